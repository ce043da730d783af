/**
 * Installs a project that depends on a packed ujr tarball without the network, from npm's cache
 * that this repository's `npm ci` filled. `npm install` alone cannot do that: resolving version
 * ranges needs the registry's package documents, which the cache need not hold. So the project gets a
 * lockfile instead, cut from this repository's own: every package the project can reach (ujr's
 * dependencies and the project's dev dependencies, which this repository uses too) keeps the
 * version and place it has here, and `npm ci --offline` installs exactly that from the cache.
 *
 * This repository's lockfile names no tarball URLs (`omit-lockfile-registry-resolved` on these
 * machines), and without one npm asks for the package's (abbreviated) document to find it: a
 * document that a cache filled any other way than by `npm ci` (say `npm install <name>`, which
 * stores the full one) does not hold, so the offline install failed with ENOTCACHED. The project's
 * lockfile therefore gets each package's registry URL, and npm takes the tarball from the cache by
 * its integrity alone.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ROOT } from '../../core/package-root.js';

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [key: string]: unknown;
}

interface Lockfile {
  name: string;
  version: string;
  lockfileVersion: number;
  requires: boolean;
  packages: Record<string, LockEntry>;
}

interface PackageJson {
  name: string;
  version?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  [key: string]: unknown;
}

/** Where `name` resolves from the package at `from` ('' is the root): Node's lookup, over lockfile paths. */
function locate(packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base === '' ? '' : `${base}/`}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (base === '') return undefined;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut === -1 ? '' : base.slice(0, cut);
  }
}

/** The registry the tarball URLs name: the user's npm configuration, as npm would use it. */
const REGISTRY = (process.env.npm_config_registry ?? 'https://registry.npmjs.org/').replace(/\/?$/, '/');

/** The registry URL of the tarball of the package installed at `path` (`…node_modules/<name>`). */
function tarballUrl(path: string, entry: LockEntry): string {
  const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  return `${REGISTRY}${name}/-/${base}-${String(entry.version)}.tgz`;
}

function sri(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/**
 * Writes `<projectDir>/package-lock.json` for the project's package.json, after pointing its `ujr`
 * dependency at `tarball` (copied into the project folder by the caller). Throws naming any
 * dependency this repository's lockfile cannot supply.
 */
export function writeOfflineLockfile(projectDir: string, tarball: string): void {
  const repoLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lockfile;
  const ujrManifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson & LockEntry;
  const manifestPath = join(projectDir, 'package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as PackageJson;
  const spec = `file:${basename(tarball)}`;
  manifest.dependencies = { ...manifest.dependencies, ujr: spec };
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);

  const packages: Record<string, LockEntry> = {};
  const pending: [from: string, name: string][] = [];
  const missing: string[] = [];
  /** The dependencies of the package at `from`, its required peers included, to be placed. */
  const want = (from: string, entry: LockEntry) => {
    for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) pending.push([from, name]);
    for (const name of Object.keys(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[name]?.optional) pending.push([from, name]);
    }
  };
  // ujr itself sits at node_modules/ujr; its dependencies resolve from there to the root's node_modules.
  want('node_modules/ujr', ujrManifest);
  for (const name of Object.keys(manifest.devDependencies ?? {})) pending.push(['', name]);
  for (const name of Object.keys(manifest.dependencies ?? {})) if (name !== 'ujr') pending.push(['', name]);
  while (pending.length > 0) {
    const [from, name] = pending.pop() as [string, string];
    const path = locate(repoLock.packages, from, name);
    if (path === undefined) {
      const optional = repoLock.packages[from]?.optionalDependencies?.[name] !== undefined || repoLock.packages[from]?.peerDependenciesMeta?.[name]?.optional;
      if (!optional) missing.push(`${name} (needed by ${from || 'the project'})`);
      continue;
    }
    if (packages[path]) continue;
    const entry = repoLock.packages[path] as LockEntry;
    packages[path] = entry.resolved === undefined && entry.link === undefined ? { ...entry, resolved: tarballUrl(path, entry) } : entry;
    want(path, entry);
  }
  if (missing.length > 0) {
    throw new Error(`this repository's package-lock.json cannot supply ${missing.join(', ')}: the project depends on packages ujr's own install did not cache`);
  }
  const lock: Lockfile = {
    name: manifest.name,
    version: manifest.version ?? '0.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': {
        name: manifest.name,
        version: manifest.version ?? '0.0.0',
        ...(manifest.dependencies ? { dependencies: manifest.dependencies } : {}),
        ...(manifest.devDependencies ? { devDependencies: manifest.devDependencies } : {}),
      },
      'node_modules/ujr': {
        version: ujrManifest.version,
        resolved: spec,
        integrity: sri(join(projectDir, basename(tarball))),
        license: ujrManifest.license,
        dependencies: ujrManifest.dependencies,
        bin: ujrManifest.bin,
        engines: ujrManifest.engines,
        peerDependencies: ujrManifest.peerDependencies,
        peerDependenciesMeta: ujrManifest.peerDependenciesMeta,
      },
      ...Object.fromEntries(Object.entries(packages).sort(([a], [b]) => a.localeCompare(b))),
    },
  };
  writeFileSync(join(projectDir, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
}

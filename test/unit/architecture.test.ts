/**
 * Architecture rules checked on the source: no import cycles anywhere, the core never imports
 * an AWS SDK (adapters under core/adapters/aws and the Lambda/container entry points may), and
 * the package never imports this repository's example jobs (the CDK app of the repository may:
 * it deploys them), and those jobs, the init template and the repository's app import ujr only
 * through its entry points, as a user's project does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCE_DIRS = ['core', 'jobs', 'bench', 'functions', 'containers', 'infra', 'build'];
const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

function sourceFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(join(root, dir), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3] ?? '').filter((s) => s !== '');
}

/** Resolves a relative import (`./x.js` meaning `./x.ts`) to a repository path. */
function resolveLocal(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const target = relative(root, resolve(root, dirname(from), specifier));
  return target.replace(/\.js$/, '.ts');
}

function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'visiting') return [...stack.slice(stack.indexOf(next)), next];
      if (state.get(next) === undefined) {
        const cycle = visit(next);
        if (cycle) return cycle;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    if (state.get(node) === undefined) {
      const cycle = visit(node);
      if (cycle) return cycle;
    }
  }
  return undefined;
}

describe('architecture', () => {
  const files = SOURCE_DIRS.flatMap(sourceFiles);

  it('finds the source files it checks', () => {
    expect(files).toContain('core/engine/runner.ts');
  });

  it('has no import cycles', () => {
    const graph = new Map(
      files.map((file) => [file, importsOf(file).flatMap((s) => resolveLocal(file, s) ?? [])] as const),
    );
    expect(findCycle(graph)).toBeUndefined();
  });

  it('detects a cycle when there is one', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
    ]);
    expect(findCycle(graph)).toEqual(['a', 'b', 'c', 'a']);
  });

  it('keeps the example jobs out of the package: nothing it ships imports jobs/ (only infra/app.ts, this repository\'s app)', () => {
    const shipped = files.filter((file) => /^(core|infra|build|functions|containers)\//.test(file) && file !== 'infra/app.ts');
    const offenders = shipped.filter((file) => importsOf(file).some((s) => resolveLocal(file, s)?.startsWith('jobs/')));
    expect(shipped).toEqual(expect.arrayContaining(['infra/job-runner.ts', 'build/bundle.ts', 'functions/worker.ts', 'containers/main.ts']));
    expect(offenders).toEqual([]);
  });

  it('has the example jobs, the init template and the repository\'s app use ujr as a user does: its entry points, never its sources', () => {
    // Relative imports stay in the project's own files: jobs/ for the examples, templates/init/ for the scaffold; none for infra/app.ts.
    const own = (file: string) => (file.startsWith('templates/init/') ? 'templates/init/' : file.startsWith('jobs/') ? 'jobs/' : undefined);
    const userCode = [...sourceFiles('jobs'), ...sourceFiles('templates/init'), 'infra/app.ts'];
    const entryPoints = new Set(['ujr', 'ujr/testing', 'ujr/cdk']);
    const offenders = userCode.flatMap((file) =>
      importsOf(file)
        .filter((s) => (s.startsWith('.') ? !(resolveLocal(file, s) ?? '').startsWith(own(file) ?? '\0') : (s === 'ujr' || s.startsWith('ujr/')) && !entryPoints.has(s)))
        .map((s) => `${file} imports ${s}`),
    );
    expect(userCode).toEqual(expect.arrayContaining(['jobs/index.ts', 'jobs/processor.ts', 'templates/init/jobs/period-report.test.ts', 'templates/init/infra/app.ts', 'infra/app.ts']));
    expect(offenders).toEqual([]);
  });

  it('keeps AWS SDKs out of the core: only core/adapters/aws may import them', () => {
    const offenders = files
      .filter((file) => file.startsWith('core/') && !file.startsWith('core/adapters/aws/'))
      .filter((file) => importsOf(file).some((s) => s.startsWith('@aws-sdk/') || s.startsWith('@aws-lambda-powertools/')));
    expect(offenders).toEqual([]);
  });
});

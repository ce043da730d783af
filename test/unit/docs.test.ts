/**
 * The docs show only commands that work: every command of README.md, CONTRIBUTING.md and docs/*.md
 * (each line of a `sh` block, and each inline code span that starts with `ujr`, `npx`, `npm` or
 * `node`) is checked against what it names:
 *
 * - `ujr …` against the CLI itself (`main` from core/cli/main.ts, asked for `--help` of each command
 *   the docs use): the command exists, every option is one it (or the program) has, an option's
 *   value is given when it takes one, and a shell line gives as many arguments as the command takes;
 * - `npm run <script>` against package.json's scripts, and the options after `--` against the
 *   `parseArgs` options of the script the benchmark runs; `npx cdk <command>` against the pinned CDK
 *   CLI's `--help`; `npx vitest run <file>` and `node <file>` against the repository's files;
 * - `export NAME=…` against the variables ujr reads (or the AWS SDK's own); the `aws dynamodb
 *   put-item` example against the instances table's keys and the instance entry schema.
 *
 * A command no check knows fails the test, so a new kind of command in the docs comes with its check.
 * Relative links and their anchors must resolve too.
 *
 * Every TypeScript example is a file of docs/examples/, which tsc and eslint check with the rest of
 * the repository; the examples of `ujr/testing` are run here and give what their comments say, and
 * the instances files shown are valid for the example job.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INSTANCES_TABLE } from '../../core/adapters/aws/tables.js';
import { main } from '../../core/cli/main.js';
import { DEFAULT_SCHEDULE, instanceEntrySchema, parseInstances } from '../../core/config.js';
import { DEFAULT_BATCH_TIMEOUT_MS } from '../../core/engine/planner.js';
import { MAX_INPUT_BYTES, MAX_RESULT_BYTES } from '../../core/limits.js';
import { CONFIG_FIELDS } from '../../core/local/project-config.js';
import { DEFAULT_RETRY } from '../../core/retry.js';
import { BUNDLE_NAMES } from '../../build/bundle.js';
import { plan, runTask } from '../../core/testing/index.js';
import { greeter } from '../../docs/examples/jobs/greeter.js';
import { sizes } from '../../docs/examples/jobs/sizes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Images the docs show that are made after the page they picture changes (see the README). */
const PENDING_IMAGES = new Set<string>();

/** Environment variables of the AWS SDK itself (ujr passes them through, never reads them). */
const SDK_VARIABLES = new Set(['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_ENDPOINT_URL']);

const NPM_COMMANDS = new Set(['ci', 'install', 'start', 'test', 'run', 'pack', 'publish']);

// ---- reading the docs ---------------------------------------------------------------------------

function docFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`);
  return ['README.md', 'CONTRIBUTING.md', ...docs.sort()];
}

/** A command as the docs show it: where, its words, and whether it is a synopsis (`[--x]`, `a|b`). */
interface Shown {
  where: string;
  words: string[];
  synopsis: boolean;
}

/**
 * Splits shell text into commands (`&&`, `||`, `;`, `|`) of words, quotes removed, comments dropped;
 * `open` says a quote is still open at its end (the command goes on on the next line).
 */
function shellCommands(line: string): { commands: string[][]; open: boolean } {
  const commands: string[][] = [[]];
  let word: string | undefined;
  let quote: string | undefined;
  const current = () => commands[commands.length - 1] as string[];
  const end = () => {
    if (word !== undefined) current().push(word);
    word = undefined;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else word = (word ?? '') + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '#' && word === undefined) {
      break;
    } else if (/\s/.test(c)) {
      end();
    } else if (c === '&' || c === '|' || c === ';') {
      end();
      if (line[i + 1] === c) i++;
      commands.push([]);
    } else {
      word = (word ?? '') + c;
    }
  }
  end();
  return { commands: commands.filter((words) => words.length > 0), open: quote !== undefined };
}

/** Every command the docs show, from `sh` blocks and from inline code spans. */
function shownCommands(): Shown[] {
  const shown: Shown[] = [];
  for (const file of docFiles()) {
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    let fence: string | undefined;
    let pending = '';
    let pendingAt = 0;
    lines.forEach((line, index) => {
      const at = `${file}:${index + 1}`;
      const fenceMatch = /^```(\w*)/.exec(line);
      if (fenceMatch) {
        fence = fence === undefined ? (fenceMatch[1] ?? '') : undefined;
        return;
      }
      if (fence === 'sh') {
        // A quoted argument may run over several lines (the put-item example).
        if (pending === '') pendingAt = index + 1;
        pending = pending === '' ? line : `${pending}\n${line}`;
        const { commands, open } = shellCommands(pending);
        if (open) return;
        for (const words of commands) shown.push({ where: `${file}:${pendingAt}`, words, synopsis: false });
        pending = '';
        return;
      }
      if (fence !== undefined) return;
      for (const span of line.matchAll(/`([^`]+)`/g)) {
        const text = (span[1] ?? '').replace(/\\\|/g, '|');
        if (!/^([A-Z_]+=\S+\s+)*(ujr|npx|npm|node)\s/.test(`${text} `)) continue;
        const words = text
          .split(/\s+/)
          .map((w) => w.replace(/^[[(]+|[\]),;…]+$/g, ''))
          .filter((w) => w !== '' && w !== '…');
        shown.push({ where: at, words, synopsis: true });
      }
    });
  }
  return shown;
}

// ---- the CLI -----------------------------------------------------------------------------------

interface HelpedCommand {
  options: Map<string, { takesValue: boolean }>;
  subcommands: Set<string>;
  required: number;
  optional: number;
}

const helpCache = new Map<string, Promise<HelpedCommand | undefined>>();

/** What `ujr <path> --help` says, or undefined when there is no such command. */
function helpOf(path: string[]): Promise<HelpedCommand | undefined> {
  const key = path.join(' ');
  let help = helpCache.get(key);
  if (!help) {
    help = (async () => {
      const out: string[] = [];
      const code = await main(['node', 'ujr', ...path, '--help'], { out: (text) => out.push(text), err: (text) => out.push(text) });
      const text = out.join('\n');
      const usage = /^Usage: (.*)$/m.exec(text)?.[1] ?? '';
      // Commander answers an unknown command with an error and exit 2, or with the parent's help.
      if (code !== 0 || !usage.startsWith(['ujr', ...path].join(' '))) return undefined;
      return parseHelp(text, usage);
    })();
    helpCache.set(key, help);
  }
  return help;
}

function parseHelp(text: string, usage: string): HelpedCommand {
  const options = new Map<string, { takesValue: boolean }>();
  const subcommands = new Set<string>();
  let section = '';
  for (const line of text.split('\n')) {
    if (line.trim() === '') section = '';
    const heading = /^(\w[\w ]*):$/.exec(line);
    if (heading) {
      section = heading[1] ?? '';
      continue;
    }
    if (section === 'Options') {
      const spec = /^ {2}(-\w, )?(--[\w-]+)( [<[])?/.exec(line);
      if (spec) {
        const takesValue = spec[3] !== undefined;
        options.set(spec[2] as string, { takesValue });
        if (spec[1]) options.set(spec[1].slice(0, 2), { takesValue });
      }
    } else if (section === 'Commands') {
      const name = /^ {2}([\w-]+)/.exec(line)?.[1];
      if (name) subcommands.add(name);
    }
  }
  const args = usage.replace(/\[options\]|\[command\]/g, '');
  return { options, subcommands, required: (args.match(/<[^>]+>/g) ?? []).length, optional: (args.match(/\[[^\]]+\]/g) ?? []).length };
}

/** The problems of one `ujr` command line (its words after `ujr`). */
async function checkUjr(words: string[], synopsis: boolean): Promise<string[]> {
  const program = await helpOf([]);
  if (!program) return ['"ujr --help" failed'];
  // The command path: words naming commands, alternatives (`enable|disable`) each checked.
  const flagsFirst = words.findIndex((w) => !w.startsWith('-'));
  const globalsBefore = flagsFirst === -1 ? words : words.slice(0, flagsFirst);
  const rest = flagsFirst === -1 ? [] : words.slice(flagsFirst);
  const problems = checkOptions(globalsBefore, [program.options], synopsis).problems;
  if (rest.length === 0) return problems;
  const alternatives = (rest[0] as string).split('|');
  for (const name of alternatives) {
    if (!program.subcommands.has(name)) {
      problems.push(`"ujr ${name}" is not a command (commands: ${[...program.subcommands].join(', ')})`);
      continue;
    }
    let path = [name];
    let command = await helpOf(path);
    let remaining = rest.slice(1);
    const sub = remaining[0];
    // `ujr jobs --stack <name>` in a synopsis names the group: its options are the program's.
    if (command && command.subcommands.size > 0 && sub !== undefined && !sub.startsWith('-')) {
      const subAlternatives = sub.split('|');
      for (const subName of subAlternatives) {
        if (!command.subcommands.has(subName)) problems.push(`"ujr ${name} ${subName}" is not a command (${name}: ${[...command.subcommands].join(', ')})`);
      }
      path = [name, subAlternatives.find((s) => command?.subcommands.has(s)) ?? (subAlternatives[0] as string)];
      command = await helpOf(path);
      remaining = remaining.slice(1);
    }
    if (!command) {
      problems.push(`"ujr ${path.join(' ')} --help" failed`);
      continue;
    }
    const { problems: optionProblems, positionals } = checkOptions(remaining, [command.options, program.options], synopsis);
    problems.push(...optionProblems.map((p) => `ujr ${path.join(' ')}: ${p}`));
    if (!synopsis && (positionals < command.required || positionals > command.required + command.optional)) {
      problems.push(`ujr ${path.join(' ')}: ${positionals} argument(s) given, it takes ${command.required} to ${command.required + command.optional}`);
    }
  }
  return problems;
}

/** Checks options against the option tables (the command's, then the program's); counts positionals. */
function checkOptions(
  words: string[],
  tables: Map<string, { takesValue: boolean }>[],
  synopsis: boolean,
): { problems: string[]; positionals: number } {
  const problems: string[] = [];
  let positionals = 0;
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (word === '-' || !word.startsWith('-')) {
      positionals++;
      continue;
    }
    const [name, inlineValue] = word.split('=', 2) as [string, string | undefined];
    const option = tables.map((table) => table.get(name)).find((o) => o !== undefined);
    if (!option) {
      problems.push(`no option ${name}`);
      continue;
    }
    if (option.takesValue && inlineValue === undefined) {
      const value = words[i + 1];
      if (value === undefined || value.startsWith('--')) {
        if (!synopsis) problems.push(`${name} needs a value`);
        continue;
      }
      i++;
    }
  }
  return { problems, positionals };
}

// ---- other programs ----------------------------------------------------------------------------

const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

/** The `parseArgs` options a script file declares (`name: { type: … }`). */
function parseArgsOptions(file: string): Set<string> {
  const text = readFileSync(join(root, file), 'utf8');
  return new Set([...text.matchAll(/^\s+'?([a-z][a-z-]*)'?: \{ type: '(?:string|boolean)'/gm)].map((m) => `--${m[1] ?? ''}`));
}

function checkNpm(words: string[]): string[] {
  const [command, ...args] = words;
  if (command === undefined || !NPM_COMMANDS.has(command)) return [`"npm ${command ?? ''}" is not one of the npm commands the docs may show (${[...NPM_COMMANDS].join(', ')})`];
  if (command !== 'run') return [];
  const [script, dashes, ...flags] = args;
  if (script === undefined) return [];
  const body = packageJson.scripts[script];
  if (body === undefined) return [`package.json has no script "${script}"`];
  if (dashes !== '--' || flags.length === 0) return [];
  const file = /node (?:--import tsx )?(\S+\.ts)/.exec(body)?.[1];
  if (!file) return [`"npm run ${script} -- …": the script "${body}" is not a node script whose options can be checked`];
  const known = parseArgsOptions(file);
  return flags.filter((f) => f.startsWith('--') && !known.has(f)).map((f) => `npm run ${script}: ${file} has no option ${f}`);
}

/** `node [--import tsx] <file> …`: a file of the repository, or a bundle that build/bundle.ts writes. */
function checkNode(words: string[]): string[] {
  const args = [...words];
  while (args[0]?.startsWith('-')) args.splice(0, args[0] === '--import' ? 2 : 1);
  const file = args[0];
  if (file === undefined) return ['node without a file'];
  if (file === 'bin/ujr.js') return [];
  const bundle = /^[\w.-]+\/([\w-]+)\/index\.mjs$/.exec(file);
  if (bundle && (BUNDLE_NAMES as readonly string[]).includes(bundle[1] ?? '')) return [];
  return existsSync(join(root, file)) ? [] : [`node ${file}: no such file in the repository`];
}

/** Variables of `export NAME=…` and `NAME=… command`: read somewhere in ujr or its tests, or the SDK's. */
function checkVariables(names: string[]): string[] {
  const sources = ['core', 'functions', 'containers', 'infra', 'build', 'test'];
  const read = (name: string) =>
    sources.some((dir) => filesUnder(join(root, dir)).some((file) => readFileSync(file, 'utf8').includes(name)));
  return names.filter((name) => !SDK_VARIABLES.has(name) && !/^AWS_ENDPOINT_URL_[A-Z_]+$/.test(name) && !read(name)).map((name) => `${name} is read nowhere in ujr`);
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : filesUnder(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** A DynamoDB JSON attribute value as plain data. */
function fromAttribute(value: unknown): unknown {
  const attribute = value as Record<string, unknown>;
  if ('S' in attribute) return attribute.S;
  if ('N' in attribute) return Number(attribute.N);
  if ('BOOL' in attribute) return attribute.BOOL;
  if ('NULL' in attribute) return null;
  if ('L' in attribute) return (attribute.L as unknown[]).map(fromAttribute);
  if ('M' in attribute) return Object.fromEntries(Object.entries(attribute.M as Record<string, unknown>).map(([k, v]) => [k, fromAttribute(v)]));
  throw new Error(`unknown attribute type in ${JSON.stringify(value)}`);
}

function checkAws(words: string[]): string[] {
  const [service, operation, ...args] = words;
  if (service !== 'dynamodb' || operation !== 'put-item') return [`no check for "aws ${service ?? ''} ${operation ?? ''}"`];
  const item = args[args.indexOf('--item') + 1];
  if (args.indexOf('--item') === -1 || item === undefined) return ['put-item without --item'];
  const plain = fromAttribute({ M: JSON.parse(item) as unknown }) as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of [INSTANCES_TABLE.partitionKey, INSTANCES_TABLE.sortKey]) {
    if (typeof plain[key.name] !== 'string') problems.push(`the item has no string key attribute "${key.name}"`);
  }
  if (plain.kind !== 'config') problems.push(`an instance's configuration item has kind "config", not ${JSON.stringify(plain.kind)}`);
  const entry = instanceEntrySchema.safeParse(plain.config);
  if (!entry.success) problems.push(`its config is not an instance entry: ${entry.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  else if (entry.data.id !== plain.instanceId) problems.push(`its config's id "${entry.data.id}" differs from its instanceId`);
  return problems;
}

function runCdkHelp(command: string): Promise<string> {
  return new Promise((resolveHelp, reject) => {
    const child = spawn(join(root, 'node_modules/.bin/cdk'), [command, '--help'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveHelp(code === 0 ? text : ''));
  });
}

// ---- the tests ---------------------------------------------------------------------------------

/** Words after leading `NAME=value` assignments, and those names. */
function withoutAssignments(words: string[]): { names: string[]; rest: string[] } {
  const names: string[] = [];
  let i = 0;
  for (; i < words.length && /^[A-Z_][A-Z0-9_]*=/.test(words[i] as string); i++) names.push((words[i] as string).split('=')[0] as string);
  return { names, rest: words.slice(i) };
}

describe('the commands the docs show', () => {
  const shown = shownCommands();

  it('finds the commands of the README and of every page under docs/', () => {
    const files = new Set(shown.map((s) => s.where.split(':')[0]));
    expect(files).toContain('README.md');
    expect(files).toContain('docs/cli.md');
    expect(files).toContain('docs/aws.md');
    expect(shown.filter((s) => !s.synopsis).length).toBeGreaterThan(20);
  });

  it('are each checked by a rule of this test, and pass it', async () => {
    const problems: string[] = [];
    const cdk = new Map<string, string[]>();
    for (const { where, words, synopsis } of shown) {
      const { names, rest } = withoutAssignments(words);
      const report = (found: string[]) => problems.push(...found.map((p) => `${where}: ${p} (in "${words.join(' ')}")`));
      report(checkVariables(names));
      let [program, ...args] = rest;
      if (program === 'npx') [program, ...args] = args;
      if (program === 'node' && args[0] === 'bin/ujr.js') [program, ...args] = ['ujr', ...args.slice(1)];
      switch (program) {
        case undefined:
          break;
        case 'ujr':
          report(await checkUjr(args, synopsis));
          break;
        case 'npm':
          report(checkNpm(args));
          break;
        case 'node':
          report(checkNode(args));
          break;
        case 'cdk': {
          const [command, ...flags] = args;
          if (command === undefined) report(synopsis ? [] : ['cdk without a command']);
          else cdk.set(command, [...(cdk.get(command) ?? []), ...flags.filter((f) => f.startsWith('-')).map((f) => `${where}: ${f}`)]);
          break;
        }
        case 'vitest':
          report(args[0] === 'run' && args[1] !== undefined && existsSync(join(root, args[1])) ? [] : [`vitest ${args.join(' ')}: not "vitest run <an existing test file>"`]);
          break;
        case 'export':
          report(checkVariables(args.map((a) => a.split('=')[0] as string)));
          break;
        case 'aws':
          report(checkAws(args));
          break;
        case 'cd':
          break;
        default:
          report([`no rule checks "${program}": add one to test/unit/docs.test.ts`]);
      }
    }
    // The pinned CDK CLI, each command the docs use asked once, all at once.
    const helps = await Promise.all([...cdk.keys()].map(async (command) => [command, await runCdkHelp(command)] as const));
    for (const [command, help] of helps) {
      if (help === '') {
        problems.push(`"cdk ${command}" is not a command of the pinned CDK CLI`);
        continue;
      }
      for (const use of cdk.get(command) ?? []) {
        const flag = use.split(': ')[1] ?? '';
        if (!new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, '\\-')}([\\s,]|$)`, 'm').test(help)) problems.push(`${use.split(': ')[0] ?? ''}: cdk ${command} has no option ${flag}`);
      }
    }
    expect(problems).toEqual([]);
  }, 20_000);
});

// ---- links -------------------------------------------------------------------------------------

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .trim()
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const counts = new Map<string, number>();
  let fence = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const heading = fence ? undefined : /^#{1,6}\s+(.*)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const seen = counts.get(base) ?? 0;
    anchors.add(seen === 0 ? base : `${base}-${seen}`);
    counts.set(base, seen + 1);
  }
  return anchors;
}

describe('the links of the docs', () => {
  it('lead to files that exist and to headings they have', () => {
    const problems: string[] = [];
    for (const file of docFiles()) {
      const text = readFileSync(join(root, file), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const link of text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const target = link[1] as string;
        if (/^[a-z]+:/.test(target)) continue;
        const [path = '', anchor] = target.split('#', 2);
        const targetFile = path === '' ? join(root, file) : resolve(root, dirname(file), path);
        const relativeTarget = targetFile.slice(root.length + 1);
        if (!existsSync(targetFile)) {
          if (!PENDING_IMAGES.has(relativeTarget)) problems.push(`${file}: ${target}: no such file`);
          continue;
        }
        if (anchor !== undefined && targetFile.endsWith('.md') && !anchorsOf(targetFile).has(anchor)) {
          problems.push(`${file}: ${target}: ${relativeTarget} has no heading with anchor #${anchor}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

// ---- examples ----------------------------------------------------------------------------------

function fencedBlocks(language: string): { where: string; code: string }[] {
  return docFiles().flatMap((file) =>
    [...readFileSync(join(root, file), 'utf8').matchAll(new RegExp(`^\`\`\`${language}\n([\\s\\S]*?)^\`\`\``, 'gm'))].map((m) => ({ where: file, code: m[1] ?? '' })),
  );
}

function exampleFiles(): string[] {
  const dir = join(root, 'docs/examples');
  const walk = (path: string): string[] =>
    readdirSync(path, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(join(path, entry.name)) : [join(path, entry.name)]));
  return walk(dir);
}

describe('the examples of the docs', () => {
  it('are each the text of a file of docs/examples/, which tsc and eslint check, and every such file is shown', () => {
    const blocks = fencedBlocks('ts');
    const examples = exampleFiles().map((file) => ({ file: file.slice(root.length + 1), text: readFileSync(file, 'utf8') }));
    const unchecked = blocks.filter((block) => !examples.some((example) => example.text.includes(block.code))).map((b) => `${b.where}: ${b.code.split('\n')[0] ?? ''}`);
    const unshown = examples.filter((example) => !blocks.some((block) => example.text.includes(block.code))).map((e) => e.file);
    expect(blocks.length).toBeGreaterThan(5);
    expect({ unchecked, unshown }).toEqual({ unchecked: [], unshown: [] });
  });

  it('of ujr/testing give what their comments say', async () => {
    for (const module of ['../../docs/examples/jobs/readme-test.js', '../../docs/examples/jobs/testing.js']) {
      const { tasks, run } = (await import(module)) as { tasks: Awaited<ReturnType<typeof plan>>['tasks']; run: Awaited<ReturnType<typeof runTask>> };
      expect(tasks).toMatchObject([{ task: 'greet', input: { name: 'alan' }, kind: 'batch' }]);
      expect(run.status).toBe('succeeded');
      expect(await run.objects.getText('greetings/ada.txt')).toBe('hello');
    }
    // An hour of plans greets ada once: the job checks its run history.
    const { runs } = (await import('../../docs/examples/jobs/testing.js')) as { runs: { task: string; status: string }[] };
    expect(runs.map((r) => [r.task, r.status])).toEqual([['greet', 'succeeded']]);
  });

  it("of context.md plans a task per object not yet measured and measures one", async () => {
    const objects = { 'raw/a.bin': 'abc', 'raw/b.bin': 'de', 'other/c.bin': 'f' };
    const planned = await plan(sizes, { params: { prefix: 'raw/' }, objects, history: [{ task: 'measure', input: { key: 'raw/a.bin' } }] });
    expect(planned.tasks.map((t) => t.input)).toEqual([{ key: 'raw/b.bin' }]);
    const measured = await runTask(sizes, 'measure', { key: 'raw/b.bin' }, { params: { prefix: 'raw/' }, objects });
    expect(measured.result).toEqual({ key: 'raw/b.bin', bytes: 2 });
    const gone = await runTask(sizes, 'measure', { key: 'raw/z.bin' }, { params: { prefix: 'raw/' }, objects });
    expect([gone.status, gone.retryable]).toEqual(['failed', false]);
  });

  it('of instances files validate against the example job', () => {
    const files = fencedBlocks('json').filter((block) => block.code.includes('"instances"'));
    expect(files.length).toBeGreaterThan(0);
    for (const { where, code } of files) {
      const json = code
        .split('\n')
        .filter((line) => !line.trimStart().startsWith('//'))
        .join('\n');
      expect({ where, problems: parseInstances(JSON.parse(json) as unknown, [greeter]).problems }).toEqual({ where, problems: [] });
    }
  });
});

// ---- reference tables ---------------------------------------------------------------------------

/** The text of a page's section: from the heading that starts with `heading` to the next of its level or above. */
function section(file: string, heading: string): string {
  const text = readFileSync(join(root, file), 'utf8');
  const start = text.indexOf(`\n${heading}`);
  if (start === -1) throw new Error(`${file} has no section "${heading}"`);
  const level = /^#+/.exec(heading)?.[0] ?? '##';
  const rest = text.slice(start + 1 + heading.length);
  const end = rest.search(new RegExp(`\\n#{1,${level.length}} `));
  return end === -1 ? rest : rest.slice(0, end);
}

/** The top-level members of an exported interface of a source file, by name. */
function membersOf(file: string, name: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const start = new RegExp(`^export interface ${name}\\b[^{]*\\{\\n`, 'm').exec(text);
  if (!start) throw new Error(`${file} has no interface ${name}`);
  const body = text.slice(start.index + start[0].length, text.indexOf('\n}', start.index));
  return [...body.matchAll(/^ {2}(?:readonly )?(\w+)\??[(:<]/gm)].map((m) => m[1] ?? '');
}

/** Names missing from a section: each must start a table cell or appear in code (`name`, `name(…)`). */
function missing(text: string, names: readonly string[]): string[] {
  return names.filter((name) => !new RegExp(`\`${name}[\`(.]`).test(text));
}

describe('the reference pages', () => {
  it('configuration.md has every instance field, job type field, task option, spec field and config field', () => {
    const file = 'docs/configuration.md';
    expect({
      instance: missing(section(file, '## The instances file'), Object.keys(instanceEntrySchema.shape)),
      job: missing(section(file, '## Job types'), membersOf('core/define.ts', 'JobDefinition')),
      task: missing(section(file, '## Task options'), membersOf('core/types.ts', 'TaskDefinition')),
      spec: missing(section(file, '## Task specs'), membersOf('core/types.ts', 'TaskSpec')),
      config: missing(section(file, '## Where ujr finds your files'), CONFIG_FIELDS),
    }).toEqual({ instance: [], job: [], task: [], spec: [], config: [] });
  });

  it("configuration.md's defaults are the code's", () => {
    const file = 'docs/configuration.md';
    const retry = section(file, '## Retry policy');
    const wrong = Object.entries(DEFAULT_RETRY).filter(([key, value]) => !retry.includes(`| \`${key}\` | ${String(value)} |`));
    expect(wrong).toEqual([]);
    expect(section(file, '## Task options')).toContain(`batch: ${DEFAULT_BATCH_TIMEOUT_MS} (15 min)`);
    expect(section(file, '## The instances file')).toContain(`else \`${DEFAULT_SCHEDULE}\``);
    expect(section(file, '## Limits')).toContain(`| ${MAX_INPUT_BYTES / 1024} KiB |`);
    expect(section(file, '## Limits')).toContain(`| ${MAX_RESULT_BYTES / 1024} KiB |`);
    const runnerOptions = readFileSync(join(root, 'core/embedded/embedded-runner.ts'), 'utf8');
    const picked = /extends Pick<RunnerOptions, ([^>]+)>/.exec(runnerOptions)?.[1]?.match(/'(\w+)'/g)?.map((m) => m.slice(1, -1)) ?? [];
    expect(picked.length).toBeGreaterThan(0);
    expect(missing(section(file, '## The local runner'), [...membersOf('core/embedded/embedded-runner.ts', 'CreateRunnerOptions'), ...picked])).toEqual([]);
  });

  it('context.md has every member of ctx, tctx, the revert context, the object store and a run record', () => {
    const file = 'docs/context.md';
    expect({
      ctx: missing(section(file, '## The plan context'), membersOf('core/types.ts', 'PlanContext')),
      tctx: missing(section(file, '## The task context'), membersOf('core/types.ts', 'TaskContext')),
      rctx: missing(section(file, '## The revert context'), membersOf('core/types.ts', 'RevertContext')),
      objects: missing(section(file, '## The object store'), membersOf('core/types.ts', 'ObjectStore')),
      run: missing(section(file, '## Run records'), membersOf('core/types.ts', 'RunRecord')),
    }).toEqual({ ctx: [], tctx: [], rctx: [], objects: [], run: [] });
  });

  it("cli.md's option table has every option of every command, with the default --help gives", async () => {
    const table = section('docs/cli.md', '## Options');
    const rows = table.split('\n').filter((line) => line.startsWith('| `'));
    const problems: string[] = [];
    const commands = [['run'], ['status'], ['runs'], ['logs'], ['trigger'], ['jobs', 'list'], ['jobs', 'enable'], ['jobs', 'disable'], ['redrive'], ['ui'], ['init'], []];
    for (const path of commands) {
      const out: string[] = [];
      await main(['node', 'ujr', ...path, '--help'], { out: (text) => out.push(text), err: (text) => out.push(text) });
      for (const { flag, default: fallback } of optionsWithDefaults(out.join('\n'))) {
        if (flag === '--help') continue;
        // Global options: | option | meaning |; a command's: | command | option | default | meaning |.
        const names = (cell: string | undefined): string[] => (cell ?? '').match(/--?[\w-]+/g) ?? [];
        const row = rows.find((line) => {
          const cells = line.split(' | ');
          return path.length === 0 ? names(cells[0]).includes(flag) : (cells[0] ?? '').startsWith(`| \`${path[0] ?? ''}`) && names(cells[1]).includes(flag);
        });
        if (!row) problems.push(`ujr ${path.join(' ')} ${flag}: no row`);
        else if (fallback !== undefined && !row.includes(fallback)) problems.push(`ujr ${path.join(' ')} ${flag}: the row does not give the default ${fallback}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

/** The long options of a `--help` text with the default each prints. */
function optionsWithDefaults(help: string): { flag: string; default: string | undefined }[] {
  const options = help.split(/\n(?= {2}-)/).filter((chunk) => /^ {2}-/.test(chunk));
  return options.map((chunk) => {
    const text = chunk.split(/\n\n/)[0]?.replace(/\s+/g, ' ') ?? '';
    const flag = /--[\w-]+/.exec(text)?.[0] ?? '';
    const fallback = /default: "?([^",;)]+)/.exec(text)?.[1];
    return { flag, default: fallback };
  });
}

#!/usr/bin/env node
// The ujr command. Job types are TypeScript, so the CLI runs under tsx's loader: a user's jobs
// module (and the task processes that load it) need no build step.
//
// Installed from the registry, the package holds the compiled CLI (dist/). In a checkout of the
// ujr repository it runs the sources, and `ujr` imports (the example jobs') resolve to them
// through the repository's tsconfig paths, here and in every task process (which inherit the
// environment), whatever the working directory.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';
import { register } from 'tsx/esm/api';

const source = new URL('../core/cli/main.ts', import.meta.url);
const checkout = existsSync(fileURLToPath(source));
if (checkout) process.env.TSX_TSCONFIG_PATH ??= fileURLToPath(new URL('../tsconfig.json', import.meta.url));
register();
const { main } = await import(checkout ? source.href : '../dist/core/cli/main.js');
process.exitCode = await main(process.argv);

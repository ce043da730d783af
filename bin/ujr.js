#!/usr/bin/env node
// The ujr command. Job types are TypeScript, so the CLI runs under tsx's loader.
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../core/cli/main.ts');
process.exitCode = await main(process.argv);

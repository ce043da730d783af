// The example of docs/configuration.md, kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

import { defineConfig } from 'ujr';

export default defineConfig({ jobs: 'src/jobs/index.ts', instances: 'config/instances.json', home: '.ujr' });

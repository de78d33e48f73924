// Rewrites .env.example and the README's config table from the config schema.
import { readFileSync, writeFileSync } from 'node:fs';
import { renderEnvExample, withConfigTable } from '../src/contracts/config/docs.js';

writeFileSync('.env.example', renderEnvExample());
writeFileSync('README.md', withConfigTable(readFileSync('README.md', 'utf8')));
console.log('wrote .env.example and the README config table');

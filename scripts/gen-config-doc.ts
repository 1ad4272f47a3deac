// Writes docs/CONFIG.md from the config schema's documentation: `npx tsx scripts/gen-config-doc.ts`.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderConfigDoc } from '../src/config/docs.js';

const target = fileURLToPath(new URL('../docs/CONFIG.md', import.meta.url));
writeFileSync(target, renderConfigDoc());
console.log(`wrote ${target}`);

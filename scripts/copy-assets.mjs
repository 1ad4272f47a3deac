// Copies the non-TypeScript assets next to the compiled JavaScript that loads them: the Lua
// scripts (src/store/scripts/*.lua) and the dashboard page (src/observability/dashboard.html).
import { cpSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { join, relative, dirname, extname } from 'node:path';

const ASSETS = new Set(['.lua', '.html']);

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (ASSETS.has(extname(name))) {
      const target = join('dist', relative('src', path));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(path, target);
    }
  }
}
walk('src');

// Regenerates docs/dashboard.png, the screenshot docs/DASHBOARD.md shows: builds dist/ (the
// daemons run from it), then runs the browser test, which writes the screenshot when
// UPDATE_DASHBOARD_SCREENSHOT=1. Needs redis-server and /usr/bin/chromium (see .ci/run).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const run = (command, args, env = {}) => {
  const result = spawnSync(command, args, {
    cwd,
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
};

run('npm', ['run', 'build']);
run(process.execPath, ['--import', 'tsx', '--test', 'test/integration/dashboard-browser.test.ts'], {
  UPDATE_DASHBOARD_SCREENSHOT: '1',
});
console.log('docs/dashboard.png written');

/**
 * The CLI's help: every command answers --help (exit 0) with the text rendered from its option
 * definitions, and docs/CLI.md quotes every help text verbatim, so the doc cannot drift.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { COMMANDS, commandHelp, programHelp } from '../../src/cli/commands.js';
import { runCli } from '../fixtures/cli/cli-process.js';

const doc = readFileSync(new URL('../../docs/CLI.md', import.meta.url), 'utf8');

describe('help and docs/CLI.md', () => {
  it("docs/CLI.md quotes the top-level help and every command's help verbatim", () => {
    assert.ok(doc.includes(programHelp()), 'top-level help in docs/CLI.md');
    for (const spec of COMMANDS) {
      assert.ok(
        doc.includes(`## \`${spec.name}\`\n\n\`\`\`text\n${commandHelp(spec)}\`\`\``),
        `docs/CLI.md is out of date for \`${spec.name}\`: paste \`replication-engine ${spec.name} --help\``,
      );
    }
  });

  it('every option a command accepts is in its help', () => {
    for (const spec of COMMANDS) {
      const help = commandHelp(spec);
      for (const [name, option] of Object.entries(spec.options)) {
        assert.ok(help.includes(`--${name}`), `${spec.name} --${name}`);
        if (option.short !== undefined) assert.ok(help.includes(`-${option.short}, --${name}`));
      }
      assert.match(help, /Exit codes:\n {2}0 /);
    }
  });

  it('`<command> --help` prints that help and exits 0, for every command', async () => {
    const results = await Promise.all(COMMANDS.map((spec) => runCli([spec.name, '--help'])));
    results.forEach((result, i) => {
      const spec = COMMANDS[i]!;
      assert.equal(result.code, 0, `${spec.name}: ${result.stderr}`);
      assert.equal(result.stdout.toString(), commandHelp(spec));
    });
  });

  it('--help, help COMMAND, --version, and unknown commands', async () => {
    const [top, helpPut, version, unknown, bare] = await Promise.all([
      runCli(['--help']),
      runCli(['help', 'put']),
      runCli(['--version']),
      runCli(['frobnicate']),
      runCli([]),
    ]);
    assert.equal(top.code, 0);
    assert.equal(top.stdout.toString(), programHelp());
    assert.equal(helpPut.stdout.toString(), commandHelp(COMMANDS.find((c) => c.name === 'put')!));
    assert.match(version.stdout.toString(), /^\d+\.\d+\.\d+\n$/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    assert.equal(bare.code, 2);
    assert.equal(bare.stderr, programHelp());
  });
});

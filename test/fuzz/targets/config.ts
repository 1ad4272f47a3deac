/**
 * Coverage-guided fuzz target (jsfuzz) for the config loader: the input is YAML text. Anything but
 * a resolved config or a ConfigError is a crash.
 */
import { parseConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/errors.js';
import { FUZZ_ENV } from '../inputs.js';

/** Relative tls.*_file paths resolve under a dir that does not exist: no real file is read. */
const BASE_DIR = '/nonexistent/replication-engine-fuzz';

export function fuzz(data: Buffer): void {
  try {
    parseConfig(data.toString('utf8'), { env: FUZZ_ENV, baseDir: BASE_DIR });
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const secret of [FUZZ_ENV['PASSWORD']!, FUZZ_ENV['TOKEN']!]) {
        if (error.message.includes(secret)) throw new Error(`secret leaked: ${error.message}`);
      }
      return;
    }
    throw error;
  }
}

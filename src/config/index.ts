/** Configuration: the YAML file, its validation, and the resolved types the code runs on. */
export { loadConfigFile, parseConfig } from './load.js';
export type { ParseConfigOptions } from './load.js';
export { defaultConfig, resolveConfig } from './resolve.js';
export { ConfigValidationError } from './issues.js';
export type { ConfigIssue, ConfigSource, SourcePosition } from './issues.js';
export type { Environment } from './interpolate.js';
export { configSchema } from './schema.js';
export type { ConfigOptions, PeerOptions } from './schema.js';
export { formatDuration, formatSize, parseDuration, parseSize } from './units.js';
export type { DurationUnit } from './units.js';
export { renderConfigDoc } from './docs.js';
export type * from './types.js';

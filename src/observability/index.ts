export * from './health.js';
export * from './http.js';
export * from './logger.js';
export * from './metric-definitions.js';
export * from './metrics.js';
export * from './repeating-warning.js';
export * from './snake-case.js';

/**
 * replication-engine: active-active replication of documents across a mesh of Redis-backed
 * nodes. Re-exports only.
 */
export * from './errors.js';
export * from './model/record.js';
export type * from './engine/local-store.js';
export { SyncStore } from './store/sync-store.js';
export type {
  SyncStoreOptions,
  SyncStoreConnectOptions,
  PutOptions,
  PutEntry,
  WriteResult,
  BatchWriteResult,
  ScanOptions,
  CountOptions,
} from './store/sync-store.js';
export type { WatchOptions, WatchEvent, Change, ResyncMarker } from './store/watch.js';
export type { ChangeSource } from './store/change-feed.js';
export { MerkleReader } from './store/merkle-reader.js';
export { parseCdcEntry, eventToRecord, encodeCdcEntry } from './codec/cdc.js';
export type { CdcEvent, CdcPut, CdcDel, CdcMeta } from './codec/cdc.js';
export { compareStreamIds, parseStreamId, lagMs } from './codec/stream-id.js';
export { ReplicationEngine } from './engine/engine.js';
export type {
  EngineState,
  EngineEvents,
  GapEvent,
  ConflictEvent,
  EngineDependencies,
  ReadyOptions,
} from './engine/engine.js';
export type { RepairOptions, RepairReport, RepairChange } from './engine/cold-path.js';
export { loadConfigFile, parseConfig, resolveConfig, defaultConfig } from './config/index.js';
export type * from './config/types.js';
export { createMetrics } from './observability/metrics.js';
export type { Metrics } from './observability/metrics.js';
export { createLogger } from './observability/logger.js';
export type { Logger } from './observability/logger.js';
export type { EngineHealth, PeerHealth } from './observability/health.js';
export * from './node/index.js';

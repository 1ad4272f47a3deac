/** A node of the mesh, wired from a resolved config: store, engine, admin HTTP, purge. */
export { connectLocalStore } from './local-store.js';
export type { ConnectLocalOptions, LocalStoreHandle } from './local-store.js';
export { engineAdminApi, purgeIntervalMs, startNode } from './node.js';
export type { RunningNode, StartNodeOptions } from './node.js';

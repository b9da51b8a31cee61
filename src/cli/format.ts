/** Human formatting of sizes and durations. */

// Sizes are formatted in core (messages of the plan use it too); the CLI re-exports it.
export { formatBytes } from '../core/bytes.js';

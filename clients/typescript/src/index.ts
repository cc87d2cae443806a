export {
  type CallSettings,
  type ClientOptions,
  type ConverseOptions,
  type ConverseTarget,
  type DeepPartial,
  type MessageLike,
  SwitchboardClient,
  system,
  user,
} from "./client";
export { type ConverseEvent, Reply, type ToolCallState } from "./reply";
export * from "./gen/switchboard/v1/conversations";
export * from "./gen/switchboard/v1/llm";
export * from "./gen/switchboard/v1/registry";
export {
  decodeStatusDetails,
  type FieldViolation,
  type RichError,
  richError,
  STATUS_DETAILS_KEY,
} from "./errors";
export * from "./gen/google/rpc/error_details";
export { Status } from "./gen/google/rpc/status";

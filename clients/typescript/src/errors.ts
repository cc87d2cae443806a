/**
 * The server's error model: decode `grpc-status-details-bin` into typed fields.
 *
 *     try {
 *       await sb.getLlm("llm_missing");
 *     } catch (err) {
 *       const rich = richError(err as ServiceError);
 *       rich.code; rich.reason; rich.retryDelayMs; rich.fieldViolations; rich.requestId;
 *     }
 *
 * Every failed Switchboard call carries a `google.rpc.Status` in that trailer with exactly one
 * `ErrorInfo`, plus `BadRequest`, `RetryInfo`, `ResourceInfo` and `RequestInfo` where they apply.
 */

import type { Metadata, ServiceError } from "@grpc/grpc-js";

import { BadRequest, ErrorInfo, RequestInfo, RetryInfo } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";

export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

const TYPE_PREFIX = "type.googleapis.com/";

export interface FieldViolation {
  field: string;
  description: string;
}

/** A failed call's status, decoded. */
export interface RichError {
  /** The gRPC status code (grpc-js `status` enum value). */
  code: number;
  message: string;
  /** ErrorInfo.reason, e.g. "LLM_NOT_FOUND"; "" when the status has no ErrorInfo. */
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  /** RetryInfo: wait this long before retrying; undefined when the server sent none. */
  retryDelayMs?: number;
  fieldViolations: FieldViolation[];
  /** RequestInfo.request_id: quote it when reporting a problem. */
  requestId: string;
  /** Every detail as sent: its type name (e.g. "switchboard.v1.ValidationReport") and bytes. */
  details: { typeName: string; value: Uint8Array }[];
}

/** Decodes a `google.rpc.Status` from trailing metadata (or the trailer's bytes). */
export function decodeStatusDetails(source: Metadata | Uint8Array): Status | undefined {
  let bytes: Uint8Array | undefined;
  if (source instanceof Uint8Array) {
    bytes = source;
  } else {
    const value = source.get(STATUS_DETAILS_KEY)[0];
    bytes = typeof value === "string" ? undefined : value;
  }
  if (bytes === undefined || bytes.length === 0) return undefined;
  try {
    return Status.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The typed error of a failed call (a grpc-js `ServiceError`). */
export function richError(err: ServiceError): RichError {
  const status = err.metadata ? decodeStatusDetails(err.metadata) : undefined;
  const rich: RichError = {
    code: err.code,
    message: status?.message ?? err.details,
    reason: "",
    domain: "",
    metadata: {},
    fieldViolations: [],
    requestId: "",
    details: [],
  };
  for (const any of status?.details ?? []) {
    const typeName = any.typeUrl.startsWith(TYPE_PREFIX)
      ? any.typeUrl.slice(TYPE_PREFIX.length) : any.typeUrl;
    rich.details.push({ typeName, value: any.value });
    if (typeName === "google.rpc.ErrorInfo") {
      const info = ErrorInfo.decode(any.value);
      rich.reason = info.reason;
      rich.domain = info.domain;
      rich.metadata = { ...info.metadata };
    } else if (typeName === "google.rpc.RetryInfo") {
      const delay = RetryInfo.decode(any.value).retryDelay;
      rich.retryDelayMs = delay ? delay.seconds * 1000 + delay.nanos / 1e6 : 0;
    } else if (typeName === "google.rpc.BadRequest") {
      rich.fieldViolations.push(...BadRequest.decode(any.value).fieldViolations.map(
        (v) => ({ field: v.field, description: v.description })));
    } else if (typeName === "google.rpc.RequestInfo") {
      rich.requestId = RequestInfo.decode(any.value).requestId;
    }
  }
  return rich;
}

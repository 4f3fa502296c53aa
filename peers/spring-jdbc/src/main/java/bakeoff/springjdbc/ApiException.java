package bakeoff.springjdbc;

import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;

/**
 * A failure with the status and the per-parameter messages the contract gives it
 * ({@code core::error}). Controllers throw it; {@link ContractErrors} renders it.
 */
final class ApiException extends RuntimeException {
    final int status;
    /** Messages by parameter (or "request"), in key order as core's BTreeMap has them. */
    final Map<String, String> errors;

    ApiException(int status, Map<String, String> errors) {
        super(status + ": " + errors, null, false, false);
        this.status = status;
        this.errors = Collections.unmodifiableMap(new TreeMap<>(errors));
    }

    private ApiException(int status, String key, String message) {
        this(status, Collections.singletonMap(key, message));
    }

    /** 400 for one parameter. */
    static ApiException invalid(String parameter, String message) {
        return new ApiException(400, parameter, message);
    }

    static ApiException contactNotFound() {
        return new ApiException(404, "contact_id", "contact not found");
    }

    static ApiException routeNotFound() {
        return new ApiException(404, "request", "no such path");
    }

    static ApiException methodNotAllowed() {
        return new ApiException(405, "request", "method not allowed");
    }

    static ApiException databaseUnavailable() {
        return new ApiException(503, "request", "database unavailable, retry later");
    }

    static ApiException internal() {
        return new ApiException(500, "request", "internal server error");
    }

    /** Any other status, its reason as the message (a servlet container's own refusals). */
    static ApiException ofStatus(int status, String reason) {
        return new ApiException(status, "request", reason);
    }
}

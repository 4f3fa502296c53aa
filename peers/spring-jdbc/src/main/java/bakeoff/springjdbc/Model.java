package bakeoff.springjdbc;

import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonSerializer;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.List;
import java.util.Map;

/**
 * The contract's JSON ({@code core::model}) as Jackson POJOs: public final fields, the wire order
 * written out in {@code @JsonPropertyOrder} (the byte order every variant sends).
 */
final class Model {
    private Model() {}

    @JsonPropertyOrder({"version", "variant"})
    static final class VersionInfo {
        public final String version;
        public final String variant;

        VersionInfo(String version, String variant) {
            this.version = version;
            this.variant = variant;
        }
    }

    @JsonPropertyOrder({"type_id", "type_name"})
    static final class ContactType {
        public final int type_id;
        public final String type_name;

        ContactType(int typeId, String typeName) {
            this.type_id = typeId;
            this.type_name = typeName;
        }
    }

    @JsonPropertyOrder({"contact_id", "first_name", "last_name", "contact_type", "phone_number", "email"})
    static final class Contact {
        public final int contact_id;
        public final String first_name;
        public final String last_name;
        public final ContactType contact_type;
        public final List<String> phone_number;
        public final List<String> email;

        Contact(int contactId, String firstName, String lastName, ContactType type,
                List<String> phones, List<String> emails) {
            this.contact_id = contactId;
            this.first_name = firstName;
            this.last_name = lastName;
            this.contact_type = type;
            this.phone_number = phones;
            this.email = emails;
        }
    }

    /** A counted list: {@code /types} and {@code /contacts}. count ignores paging. */
    @JsonPropertyOrder({"count", "results"})
    static final class Page<T> {
        public final long count;
        public final List<T> results;

        Page(long count, List<T> results) {
            this.count = count;
            this.results = results;
        }
    }

    @JsonPropertyOrder({"result"})
    static final class FibonacciBody {
        public final long result;

        FibonacciBody(long result) {
            this.result = result;
        }
    }

    /** {@code /test/calibrate} and the waits. */
    @JsonPropertyOrder({"message", "result"})
    static final class TimedBody {
        public final String message;
        @JsonSerialize(using = SecondsSerializer.class)
        public final double result;

        TimedBody(String message, double result) {
            this.message = message;
            this.result = result;
        }
    }

    /** {@code /test/sync-cpubound} and {@code /test/offload-cpubound}. */
    @JsonPropertyOrder({"message", "result", "checksum"})
    static final class CpuBody {
        public final String message;
        @JsonSerialize(using = SecondsSerializer.class)
        public final double result;
        /** A u64: beyond a Java long's range half the time. */
        public final BigInteger checksum;

        CpuBody(String message, double result, long checksum) {
            this.message = message;
            this.result = result;
            this.checksum = new BigInteger(Long.toUnsignedString(checksum));
        }
    }

    @JsonPropertyOrder({"status", "errors"})
    static final class ErrorBody {
        public final int status;
        public final Map<String, String> errors;

        ErrorBody(ApiException error) {
            this.status = error.status;
            this.errors = error.errors;
        }
    }

    @JsonPropertyOrder({
        "variant", "pid", "threads", "rss_bytes", "cpu_user_seconds", "cpu_system_seconds",
        "uptime_seconds", "processes", "workers", "db_pool_size", "db_recycle"
    })
    static final class ResourceSnapshot {
        public final String variant;
        public final long pid;
        public final long threads;
        public final long rss_bytes;
        @JsonSerialize(using = SecondsSerializer.class)
        public final double cpu_user_seconds;
        @JsonSerialize(using = SecondsSerializer.class)
        public final double cpu_system_seconds;
        @JsonSerialize(using = SecondsSerializer.class)
        public final double uptime_seconds;
        /** One JVM serves every connection. */
        public final int processes = 1;
        public final int workers;
        public final int db_pool_size;
        public final String db_recycle;

        ResourceSnapshot(String variant, long pid, long threads, long rssBytes, double user,
                double system, double uptime, int workers, int dbPoolSize, String dbRecycle) {
            this.variant = variant;
            this.pid = pid;
            this.threads = threads;
            this.rss_bytes = rssBytes;
            this.cpu_user_seconds = user;
            this.cpu_system_seconds = system;
            this.uptime_seconds = uptime;
            this.workers = workers;
            this.db_pool_size = dbPoolSize;
            this.db_recycle = dbRecycle;
        }
    }

    /**
     * An f64 as serde_json (the ryu crate) writes it: the shortest digits that round-trip, laid
     * out as {@code 0.000015}, {@code 1e-7}, {@code 12.0}, where Jackson would write Java's
     * {@code 1.5E-5}, {@code 1.0E-7}, {@code 12.0}.
     */
    static final class SecondsSerializer extends JsonSerializer<Double> {
        @Override
        public void serialize(Double value, JsonGenerator generator, SerializerProvider provider)
                throws IOException {
            generator.writeNumber(formatFloat(value));
        }
    }

    static String formatFloat(double value) {
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            return "null";
        }
        if (value == 0) {
            return 1 / value < 0 ? "-0.0" : "0.0";
        }
        String sign = value < 0 ? "-" : "";
        // Java's digits (the shortest on Java 19 and later, all but never longer on 17).
        BigDecimal decimal = new BigDecimal(Double.toString(Math.abs(value))).stripTrailingZeros();
        String digits = decimal.unscaledValue().toString();
        // value = 0.DIGITS x 10^point; ryu's cases, in its order.
        int point = digits.length() - decimal.scale();
        int length = digits.length();
        String text;
        if (0 <= point - length && point <= 16) {
            text = digits + repeat('0', point - length) + ".0";
        } else if (0 < point && point <= 16) {
            text = digits.substring(0, point) + "." + digits.substring(point);
        } else if (-5 < point && point <= 0) {
            text = "0." + repeat('0', -point) + digits;
        } else if (length == 1) {
            text = digits + "e" + (point - 1);
        } else {
            text = digits.charAt(0) + "." + digits.substring(1) + "e" + (point - 1);
        }
        return sign + text;
    }

    private static String repeat(char character, int count) {
        StringBuilder text = new StringBuilder(count);
        for (int index = 0; index < count; index++) {
            text.append(character);
        }
        return text.toString();
    }
}

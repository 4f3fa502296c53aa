package bakeoff.springjdbc;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Parsing of every path and query parameter of the contract ({@code core::params}): parse, don't
 * validate. Controllers take path variables as plain strings and the raw query string, so that no
 * Spring converter answers first, and get a valid value or the contract's 400 with core's message.
 */
final class Params {
    static final long INT4_MAX = Integer.MAX_VALUE;
    static final int DEFAULT_LIMIT = 100;
    static final int MAX_LIMIT = 200;
    static final int MAX_PREFIX_CHARACTERS = 100;

    private Params() {}

    /** A decimal integer of ASCII digits only (no sign, no spaces) within min..=max, or -1. */
    static long parseBounded(String text, long min, long max) {
        if (text.isEmpty() || text.length() > 20) {
            return -1;
        }
        for (int index = 0; index < text.length(); index++) {
            char digit = text.charAt(index);
            if (digit < '0' || digit > '9') {
                return -1;
            }
        }
        try {
            long value = Long.parseLong(text);
            return value >= min && value <= max ? value : -1;
        } catch (NumberFormatException beyondLong) {
            return -1;
        }
    }

    static String rangeMessage(long min, long max) {
        return "must be an integer from " + min + " to " + max;
    }

    private static long bounded(String parameter, String text, long min, long max) {
        long value = parseBounded(text, min, max);
        if (value < 0) {
            throw ApiException.invalid(parameter, rangeMessage(min, max));
        }
        return value;
    }

    /** {@code /contacts/{contact_id}}: a positive PostgreSQL integer. */
    static int contactId(String text) {
        return (int) bounded("contact_id", text, 1, INT4_MAX);
    }

    /** {@code /fibonacci/{n}}: small enough that naive recursion ends. */
    static int fibonacciN(String text) {
        return (int) bounded("n", text, 0, 40);
    }

    /** {@code /test/*-cpubound/{iterations}}: repetitions of the CPU workload. */
    static int iterations(String text) {
        return (int) bounded("iterations", text, 1, 10_000);
    }

    /** {@code /test/*-iobound/{millis}}: how long to wait, up to a minute. */
    static long millis(String text) {
        return bounded("millis", text, 0, 60_000);
    }

    /**
     * Rust's char::is_alphanumeric: the Alphabetic property (letters, letter numbers and
     * Other_Alphabetic marks) or a numeric category (Nd, Nl, No).
     */
    static boolean isAlphanumeric(int codePoint) {
        if (Character.isAlphabetic(codePoint)) {
            return true;
        }
        int type = Character.getType(codePoint);
        return type == Character.DECIMAL_DIGIT_NUMBER
                || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }

    /** The query of {@code GET /contacts}: limit, offset and an optional last-name prefix. */
    static final class PageRequest {
        final long limit;
        final long offset;
        /** 1 to 100 letters, digits and spaces (no LIKE wildcard can reach the database), or null. */
        final String starts;

        PageRequest(long limit, long offset, String starts) {
            this.limit = limit;
            this.offset = offset;
            this.starts = starts;
        }

        /** Matched against lower(last_name): the lower-cased prefix and {@code %}. */
        String likePattern() {
            return starts.toLowerCase(Locale.ROOT) + "%";
        }

        /**
         * Parses the raw query string (without {@code ?}), percent-encoded as it arrived. Unknown
         * parameters are ignored; a repeated parameter takes its last value; every invalid value is
         * reported, not just the first.
         */
        static PageRequest fromQuery(String rawQuery) {
            Map<String, String> given = new HashMap<>();
            for (String piece : (rawQuery == null ? "" : rawQuery).split("&", -1)) {
                if (piece.isEmpty()) {
                    continue;
                }
                int equals = piece.indexOf('=');
                String name = formDecode(equals < 0 ? piece : piece.substring(0, equals));
                String value = equals < 0 ? "" : formDecode(piece.substring(equals + 1));
                if (name.equals("limit") || name.equals("offset") || name.equals("starts")) {
                    given.put(name, value);
                }
            }
            Map<String, String> errors = new TreeMap<>();
            long limit = DEFAULT_LIMIT;
            long offset = 0;
            String starts = null;
            if (given.containsKey("limit")) {
                limit = parseBounded(given.get("limit"), 1, MAX_LIMIT);
                if (limit < 0) {
                    errors.put("limit", rangeMessage(1, MAX_LIMIT));
                }
            }
            if (given.containsKey("offset")) {
                offset = parseBounded(given.get("offset"), 0, INT4_MAX);
                if (offset < 0) {
                    errors.put("offset", rangeMessage(0, INT4_MAX));
                }
            }
            if (given.containsKey("starts")) {
                starts = given.get("starts");
                String problem = prefixProblem(starts);
                if (problem != null) {
                    errors.put("starts", problem);
                }
            }
            if (!errors.isEmpty()) {
                throw new ApiException(400, errors);
            }
            return new PageRequest(limit, offset, starts);
        }
    }

    /** Why a last-name prefix is invalid, or null. */
    static String prefixProblem(String text) {
        int characters = text.codePointCount(0, text.length());
        if (characters < 1 || characters > MAX_PREFIX_CHARACTERS) {
            return "must be 1 to " + MAX_PREFIX_CHARACTERS + " characters";
        }
        boolean valid = text.codePoints().allMatch(c -> c == ' ' || isAlphanumeric(c));
        return valid ? null : "may contain only letters, digits and spaces";
    }

    /**
     * application/x-www-form-urlencoded decoded as the url crate does (core's parser): {@code +} is
     * a space, {@code %XX} a byte, a malformed escape kept as it is, invalid UTF-8 replaced.
     */
    static String formDecode(String text) {
        byte[] raw = text.getBytes(StandardCharsets.ISO_8859_1);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(raw.length);
        for (int index = 0; index < raw.length; index++) {
            byte current = raw[index];
            if (current == '+') {
                bytes.write(' ');
            } else if (current == '%'
                    && index + 2 < raw.length
                    && Character.digit(raw[index + 1], 16) >= 0
                    && Character.digit(raw[index + 2], 16) >= 0) {
                bytes.write(Character.digit(raw[index + 1], 16) * 16 + Character.digit(raw[index + 2], 16));
                index += 2;
            } else {
                bytes.write(current);
            }
        }
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPLACE)
                    .onUnmappableCharacter(CodingErrorAction.REPLACE)
                    .decode(ByteBuffer.wrap(bytes.toByteArray()))
                    .toString();
        } catch (CharacterCodingException cannotHappen) {
            throw new IllegalStateException(cannotHappen);
        }
    }
}

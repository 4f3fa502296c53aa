package bakeoff.springjdbc;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The configuration every bakeoff server reads from its environment ({@code core::config}): the
 * same variables, the same rules and one-line errors naming the variable.
 */
final class Settings {
    static final String DEFAULT_BIND = "127.0.0.1:8000";
    static final long DEFAULT_DB_WAIT_TIMEOUT_MS = 2_000;
    /** How long in-flight requests may run on after SIGTERM or SIGINT. */
    static final Duration SHUTDOWN_DEADLINE = Duration.ofSeconds(10);
    /** Jetty's QueuedThreadPool default (and Spring Boot's for Jetty): 200 request threads. */
    static final int DEFAULT_WORKERS = 200;
    /** HikariCP's default maximumPoolSize. */
    static final int DEFAULT_POOL_SIZE = 10;

    /** DB_RECYCLE: whether checking a pooled connection out runs a query. */
    enum DbRecycle {
        FAST,
        VERIFIED;

        String value() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** A configuration variable that is missing or malformed. */
    static final class ConfigError extends Exception {
        ConfigError(String variable, String problem) {
            super(variable + ": " + problem);
        }
    }

    /** The JDBC URL and credentials taken from DATABASE_URL. */
    final String jdbcUrl;
    final String user;
    final String password;
    final InetSocketAddress bind;
    /** Jetty's request-serving threads. */
    final int workers;
    final int dbPoolSize;
    final Duration dbWaitTimeout;
    final DbRecycle dbRecycle;
    /** slf4j-simple's level, from RUST_LOG. */
    final String logLevel;

    private Settings(
            String jdbcUrl,
            String user,
            String password,
            InetSocketAddress bind,
            int workers,
            int dbPoolSize,
            Duration dbWaitTimeout,
            DbRecycle dbRecycle,
            String logLevel) {
        this.jdbcUrl = jdbcUrl;
        this.user = user;
        this.password = password;
        this.bind = bind;
        this.workers = workers;
        this.dbPoolSize = dbPoolSize;
        this.dbWaitTimeout = dbWaitTimeout;
        this.dbRecycle = dbRecycle;
        this.logLevel = logLevel;
    }

    private static String present(Map<String, String> environment, String name) {
        String value = environment.get(name);
        return value == null || value.trim().isEmpty() ? null : value;
    }

    /** A whole number of at least 1, as Rust's usize parser reads it after trimming. */
    private static Integer positive(String text) {
        String trimmed = text.trim();
        if (!trimmed.matches("\\+?[0-9]+")) {
            return null;
        }
        try {
            int value = Integer.parseInt(trimmed.startsWith("+") ? trimmed.substring(1) : trimmed);
            return value >= 1 ? value : null;
        } catch (NumberFormatException tooLarge) {
            return null;
        }
    }

    private static final Pattern SOCKET_ADDRESS =
            Pattern.compile("\\[([0-9A-Fa-f:.]+)\\]:([0-9]{1,5})|([0-9.]+):([0-9]{1,5})");

    /** An IP address and port as Rust's SocketAddr parses them: no host names. */
    private static InetSocketAddress socketAddress(String text) {
        Matcher match = SOCKET_ADDRESS.matcher(text);
        if (!match.matches()) {
            return null;
        }
        String host = match.group(1) != null ? match.group(1) : match.group(3);
        int port = Integer.parseInt(match.group(2) != null ? match.group(2) : match.group(4));
        if (port > 65_535 || (match.group(3) != null && !host.matches("([0-9]{1,3}\\.){3}[0-9]{1,3}"))) {
            return null;
        }
        try {
            // Literal addresses only (the pattern admits no names), so nothing is looked up.
            return new InetSocketAddress(InetAddress.getByName(host), port);
        } catch (Exception notAnAddress) {
            return null;
        }
    }

    static Settings fromEnvironment(Map<String, String> environment) throws ConfigError {
        String url = present(environment, "DATABASE_URL");
        if (url == null) {
            throw new ConfigError("DATABASE_URL", "is required (postgres://user@host:port/db)");
        }
        url = url.trim();
        URI uri;
        try {
            uri = new URI(url);
        } catch (URISyntaxException malformed) {
            throw new ConfigError("DATABASE_URL", "not a URL (" + malformed.getReason() + ")");
        }
        if (uri.getScheme() == null || !url.contains("://")) {
            throw new ConfigError("DATABASE_URL", "not a URL (no scheme://)");
        }
        if (!uri.getScheme().equals("postgres") && !uri.getScheme().equals("postgresql")) {
            throw new ConfigError(
                    "DATABASE_URL",
                    "scheme must be postgres:// or postgresql://, not " + uri.getScheme() + "://");
        }
        String bindText = present(environment, "BIND");
        InetSocketAddress bind = socketAddress(bindText == null ? DEFAULT_BIND : bindText.trim());
        if (bind == null) {
            throw new ConfigError(
                    "BIND", '"' + bindText + "\" is not an address and port such as 127.0.0.1:8000");
        }
        int workers = positiveOr(environment, "WORKERS", DEFAULT_WORKERS);
        int poolSize = positiveOr(environment, "DB_POOL_SIZE", DEFAULT_POOL_SIZE);
        long waitMillis = DEFAULT_DB_WAIT_TIMEOUT_MS;
        String waitText = present(environment, "DB_WAIT_TIMEOUT_MS");
        if (waitText != null) {
            Integer millis = positive(waitText);
            if (millis == null) {
                throw new ConfigError(
                        "DB_WAIT_TIMEOUT_MS", '"' + waitText + "\" is not a number of milliseconds");
            }
            waitMillis = millis;
        }
        DbRecycle recycle = DbRecycle.FAST;
        String recycleText = present(environment, "DB_RECYCLE");
        if (recycleText != null) {
            switch (recycleText.trim().toLowerCase(Locale.ROOT)) {
                case "fast":
                    break;
                case "verified":
                    recycle = DbRecycle.VERIFIED;
                    break;
                default:
                    throw new ConfigError(
                            "DB_RECYCLE", '"' + recycleText + "\" is neither fast nor verified");
            }
        }
        return new Settings(
                jdbcUrl(uri),
                userInfo(uri, 0),
                userInfo(uri, 1),
                bind,
                workers,
                poolSize,
                Duration.ofMillis(waitMillis),
                recycle,
                logLevel(environment.get("RUST_LOG")));
    }

    private static int positiveOr(Map<String, String> environment, String name, int fallback)
            throws ConfigError {
        String text = present(environment, name);
        if (text == null) {
            return fallback;
        }
        Integer value = positive(text);
        if (value == null) {
            throw new ConfigError(name, '"' + text + "\" is not a whole number of at least 1");
        }
        return value;
    }

    /** postgres://host:port/db?query as pgjdbc's jdbc:postgresql://host:port/db?query. */
    private static String jdbcUrl(URI uri) {
        String host = uri.getHost() == null ? "localhost" : uri.getHost();
        String port = uri.getPort() < 0 ? "" : ":" + uri.getPort();
        String path = uri.getRawPath() == null ? "/" : uri.getRawPath();
        String query = uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery();
        return "jdbc:postgresql://" + host + port + path + query;
    }

    /** The user (part 0) or password (part 1) of the URL, decoded; null when absent. */
    private static String userInfo(URI uri, int part) {
        String info = uri.getUserInfo();
        if (info == null) {
            return null;
        }
        String[] parts = info.split(":", 2);
        return part < parts.length ? parts[part] : null;
    }

    /** RUST_LOG read as a plain level (a filter with targets falls back to warnings). */
    private static String logLevel(String text) {
        String level = text == null ? "warn" : text.trim().toLowerCase(Locale.ROOT);
        switch (level) {
            case "error":
            case "warn":
            case "info":
            case "debug":
            case "trace":
                return level;
            default:
                return "warn";
        }
    }

    /** host:port as Rust's SocketAddr writes it (brackets around IPv6). */
    static String addressText(InetAddress address, int port) {
        String host = address.getHostAddress();
        return host.contains(":") ? "[" + host + "]:" + port : host + ":" + port;
    }
}

package bakeoff.springjdbc;

/** The text of {@code --help}. */
final class Help {
    private Help() {}

    static final String TEXT = Main.VARIANT + " " + Main.VERSION
            + ": Spring MVC 4.3 in embedded Jetty 9.4, thread-per-request, JdbcTemplate over HikariCP\n"
            + "\n"
            + "Usage: java -jar spring-jdbc.jar   (configured by environment variables only)\n"
            + "\n"
            + "Environment:\n"
            + "  DATABASE_URL        required; postgres://user[:password]@host[:port]/dbname\n"
            + "  BIND                address to listen on (default " + Settings.DEFAULT_BIND
            + "; port 0 picks a free port)\n"
            + "  WORKERS             Jetty's request-serving threads (default: "
            + Settings.DEFAULT_WORKERS + ", Jetty's and Spring Boot's\n"
            + "                      default pool, whatever the CPUs); the acceptor and selector\n"
            + "                      threads come on top\n"
            + "  DB_POOL_SIZE        database connections (default: " + Settings.DEFAULT_POOL_SIZE
            + ", HikariCP's maximumPoolSize)\n"
            + "  DB_WAIT_TIMEOUT_MS  how long a request may wait for a connection before 503 (default "
            + Settings.DEFAULT_DB_WAIT_TIMEOUT_MS + ")\n"
            + "  DB_RECYCLE          fast (default) or verified: whether checking a connection out runs a query;\n"
            + "                      here: HikariCP's check on borrow (isValid, an empty query), on every\n"
            + "                      checkout under verified, on none under fast\n"
            + "  RUST_LOG            log level for stderr: error, warn, info or debug (default warn)\n"
            + "\n"
            + "On start it prints one line, `listening on http://ADDR`, on stdout.\n"
            + "SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit within "
            + Settings.SHUTDOWN_DEADLINE.getSeconds() + " s.\n";
}

package bakeoff.springjdbc;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;
import java.util.List;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.dao.DataAccessException;
import org.springframework.jdbc.CannotGetJdbcConnectionException;
import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.jdbc.core.RowMapper;
import org.springframework.jdbc.datasource.DataSourceTransactionManager;
import org.springframework.jdbc.datasource.DataSourceUtils;
import org.springframework.jdbc.support.SQLErrorCodeSQLExceptionTranslator;
import org.springframework.transaction.TransactionDefinition;
import org.springframework.transaction.support.TransactionTemplate;

/**
 * The database side: HikariCP's pool, Spring's JdbcTemplate, one connection per request for all of
 * its statements.
 *
 * <p>The request's scope is a {@link TransactionTemplate} with PROPAGATION_SUPPORTS: Spring binds
 * the first connection JdbcTemplate takes to the request's thread and releases it when the scope
 * ends, without a transaction (no BEGIN or COMMIT, which pg_stat_statements would count against
 * the statement budget); each statement is its own, as in core.
 *
 * <p>DB_RECYCLE is HikariCP's own check on borrow: Hikari validates a connection that has been idle
 * longer than its {@code com.zaxxer.hikari.aliveBypassWindowMs} (500 ms by default) with JDBC's
 * {@code isValid}, which pgjdbc runs as an empty query. {@code verified} sets the window below
 * zero (every checkout is checked), {@code fast} beyond any idle time (none is). Either way a
 * request whose first statement finds its connection closed under it (a PostgreSQL restart,
 * pg_terminate_backend; Hikari evicts a connection that threw SQLSTATE 08xxx or 57P01) runs once
 * more on another connection, checked first.
 */
final class Database {
    private static final Logger LOG = LoggerFactory.getLogger(Database.class);

    private final HikariDataSource dataSource;
    private final JdbcTemplate jdbc;
    private final TransactionTemplate requestScope;
    private final Settings settings;

    Database(Settings settings) {
        this.settings = settings;
        // Read by HikariPool when it is created: set before the first pool exists.
        System.setProperty(
                "com.zaxxer.hikari.aliveBypassWindowMs",
                settings.dbRecycle == Settings.DbRecycle.VERIFIED ? "-1" : Long.toString(Long.MAX_VALUE / 2));
        HikariConfig config = new HikariConfig();
        config.setPoolName(Main.VARIANT);
        config.setJdbcUrl(settings.jdbcUrl);
        config.setUsername(settings.user);
        config.setPassword(settings.password);
        // A fixed pool, as HikariCP recommends: minimumIdle = maximumPoolSize.
        config.setMaximumPoolSize(settings.dbPoolSize);
        config.setMinimumIdle(settings.dbPoolSize);
        config.setConnectionTimeout(Math.max(250, settings.dbWaitTimeout.toMillis()));
        config.setValidationTimeout(Math.max(250, settings.dbWaitTimeout.toMillis() - 1));
        // Start (and answer 503) while PostgreSQL is down; the pool fills in the background.
        config.setInitializationFailTimeout(-1);
        config.addDataSourceProperty("connectTimeout",
                Long.toString(Math.max(1, (settings.dbWaitTimeout.toMillis() + 999) / 1000)));
        this.dataSource = new HikariDataSource(config);
        this.jdbc = new JdbcTemplate(dataSource);
        // PostgreSQL's error codes named up front: by default the translator reads the product
        // name through a connection of its own when it first translates an error, which, with
        // the database down, waits out a whole connection timeout before the request's 503.
        jdbc.setExceptionTranslator(new SQLErrorCodeSQLExceptionTranslator("PostgreSQL"));
        this.requestScope = new TransactionTemplate(new DataSourceTransactionManager(dataSource));
        requestScope.setPropagationBehavior(TransactionDefinition.PROPAGATION_SUPPORTS);
    }

    /** Runs a request's statements on one connection, retrying once as the class says. */
    <T> T withConnection(Function<Statements, T> work) {
        Statements first = new Statements(true);
        try {
            return requestScope.execute(status -> work.apply(first));
        } catch (DataAccessException error) {
            if (!first.firstStatementLost) {
                throw error;
            }
            LOG.info("database connection closed under a request; retrying on another");
        }
        // Checked here under fast (under verified Hikari has checked it); one that fails is
        // evicted and another taken, at most once per connection of the pool.
        for (int attempt = 0; attempt <= settings.dbPoolSize; attempt++) {
            try {
                return requestScope.execute(status -> {
                    if (settings.dbRecycle == Settings.DbRecycle.FAST) {
                        checkBoundConnection();
                    }
                    return work.apply(new Statements(false));
                });
            } catch (ClosedConnection closed) {
                continue;
            }
        }
        throw ApiException.databaseUnavailable();
    }

    /** A connection that failed its check before the retry. */
    private static final class ClosedConnection extends RuntimeException {
        ClosedConnection() {
            super(null, null, false, false);
        }
    }

    private void checkBoundConnection() {
        Connection connection = DataSourceUtils.getConnection(dataSource);
        boolean valid;
        try {
            valid = connection.isValid((int) Math.max(1, settings.dbWaitTimeout.getSeconds()));
        } catch (SQLException error) {
            valid = false;
        }
        if (!valid) {
            dataSource.evictConnection(connection);
            throw new ClosedConnection();
        }
    }

    /** The request's statements through JdbcTemplate; notes whether the first one found its
     * connection closed. */
    final class Statements {
        private final boolean mayRetry;
        private int run;
        boolean firstStatementLost;

        Statements(boolean mayRetry) {
            this.mayRetry = mayRetry;
        }

        <T> List<T> query(String sql, RowMapper<T> mapper, Object... arguments) {
            run++;
            try {
                return jdbc.query(sql, mapper, arguments);
            } catch (DataAccessException error) {
                // Not a connection that could not be had (the database is down): Hikari reports
                // that with the SQLSTATE of its last failed connect, 08001.
                firstStatementLost = mayRetry
                        && run == 1
                        && !(error instanceof CannotGetJdbcConnectionException)
                        && isConnectionLost(error);
                throw error;
            }
        }

        long count(String sql, Object... arguments) {
            return query(sql, (row, index) -> row.getLong(1), arguments).get(0);
        }
    }

    private static SQLException sqlCause(Throwable error) {
        for (Throwable cause = error; cause != null; cause = cause.getCause()) {
            if (cause instanceof SQLException) {
                return (SQLException) cause;
            }
        }
        return null;
    }

    /** core's rule: the backend terminated (57P01, 57P02) or SQLSTATE class 08. */
    static boolean isConnectionLost(Throwable error) {
        SQLException cause = sqlCause(error);
        String state = cause == null ? null : cause.getSQLState();
        return state != null
                && (state.startsWith("08") || state.equals("57P01") || state.equals("57P02"));
    }

    /** core's rule for a 503: SQLSTATE classes 08, 57P and 53, or no connection in time. */
    static boolean isUnavailable(Throwable error) {
        if (error instanceof CannotGetJdbcConnectionException) {
            return true;
        }
        SQLException cause = sqlCause(error);
        if (cause instanceof SQLTransientConnectionException) {
            return true;
        }
        String state = cause == null ? null : cause.getSQLState();
        return state != null
                && (state.startsWith("08") || state.startsWith("57P") || state.startsWith("53"));
    }

    /** Waits, up to {@code timeout}, for Hikari to open the pool's connections in the background,
     * so that the first requests pay for no connect; best effort (the database may be down). */
    void awaitConnections(java.time.Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (dataSource.getHikariPoolMXBean().getTotalConnections() < settings.dbPoolSize
                && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
    }

    void close() {
        dataSource.close();
    }
}

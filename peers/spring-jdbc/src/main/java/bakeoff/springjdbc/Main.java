package bakeoff.springjdbc;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import javax.servlet.ServletException;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.StatisticsHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.springframework.web.context.support.AnnotationConfigWebApplicationContext;
import org.springframework.web.servlet.DispatcherServlet;
import sun.misc.Signal;

/**
 * spring-jdbc: the first study's JVM control case on the bakeoff contract. Spring MVC's
 * DispatcherServlet in embedded Jetty, thread-per-request (Jetty's QueuedThreadPool), JdbcTemplate
 * over one HikariCP pool, Jackson for the JSON.
 *
 * <p>main reads the configuration (answering {@code --help} and {@code --version}), starts Jetty,
 * prints {@code listening on http://ADDR}, and on SIGTERM or SIGINT stops accepting, lets the
 * requests in flight finish and exits 0 (1 if one was still running at the 10 s deadline). The
 * JVM's own handling of those signals (shutdown hooks, exit code 143) is replaced for that.
 */
public final class Main {
    static final String VARIANT = "spring-jdbc";
    /** The JSON of every answer: Jackson's defaults, which are serde_json's compact form. */
    static final ObjectMapper JSON = new ObjectMapper();
    /** The contract's document, core's generated one, served byte for byte (on the classpath). */
    static final byte[] OPENAPI_DOCUMENT = resource("/openapi.json");
    /** The workspace version: core writes it into the document's info.version. */
    static final String VERSION = documentVersion();

    private Main() {}

    public static void main(String[] arguments) throws Exception {
        Settings settings = startup(arguments);
        // slf4j-simple reads its level once, when the first logger is made.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", settings.logLevel);
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        // A 404 is an answer of the contract, not a warning (Spring logs each at WARN).
        System.setProperty("org.slf4j.simpleLogger.log.org.springframework.web.servlet.PageNotFound", "error");
        Workload.warmUp();
        Database database = new Database(settings);

        QueuedThreadPool threads = new QueuedThreadPool();
        threads.setName("jetty");
        Server server = new Server(threads);
        ServerConnector connector = new ServerConnector(server);
        connector.setHost(settings.bind.getAddress().getHostAddress());
        connector.setPort(settings.bind.getPort());
        server.addConnector(connector);
        // WORKERS threads serve requests; the acceptor and selector threads Jetty leases from the
        // same pool come on top.
        int leased = connector.getAcceptors() + connector.getSelectorManager().getSelectorCount();
        threads.setMaxThreads(settings.workers + leased);
        threads.setMinThreads(Math.min(8, settings.workers + leased));
        // Jetty keeps some idle request threads reserved for the next task (its default, max(1,
        // min(CPUs, threads / 10))) and refuses to start unless they are fewer than the request
        // threads: with a single one there is none to reserve.
        if (settings.workers == 1) {
            threads.setReservedThreads(0);
        }

        StatisticsHandler requests = new StatisticsHandler();
        requests.setHandler(servletContext(settings, database));
        server.setHandler(requests);
        server.setErrorHandler(new ContractErrors.JettyErrors());
        server.setStopTimeout(Settings.SHUTDOWN_DEADLINE.toMillis());
        server.setStopAtShutdown(false);

        Signal.handle(new Signal("TERM"), signal -> drainAndExit(server, requests, database));
        Signal.handle(new Signal("INT"), signal -> drainAndExit(server, requests, database));
        try {
            server.start();
        } catch (Exception failed) {
            // Jetty's and Hikari's threads would keep the JVM alive, serving nothing.
            System.err.println("error: cannot start serving on "
                    + Settings.addressText(settings.bind.getAddress(), settings.bind.getPort()) + ": " + failed);
            System.exit(1);
        }
        database.awaitConnections(settings.dbWaitTimeout);
        System.out.println("listening on http://" + Settings.addressText(
                settings.bind.getAddress(), connector.getLocalPort()));
        System.out.flush();
        server.join();
    }

    /** The DispatcherServlet over the beans of {@link WebConfig}, started with Jetty. */
    private static ServletContextHandler servletContext(Settings settings, Database database) {
        AnnotationConfigWebApplicationContext spring = new AnnotationConfigWebApplicationContext();
        spring.register(WebConfig.class);
        spring.addBeanFactoryPostProcessor(beans -> {
            beans.registerSingleton("settings", settings);
            beans.registerSingleton("database", database);
        });
        DispatcherServlet dispatcher = new DispatcherServlet(spring) {
            /** TRACE like any method but GET and HEAD (the servlet's own would echo the request
             * after the 405). */
            @Override
            protected void doTrace(HttpServletRequest request, HttpServletResponse response)
                    throws ServletException, IOException {
                processRequest(request, response);
            }
        };
        // Unknown paths and other methods reach the controller advice, not the servlet's defaults.
        dispatcher.setThrowExceptionIfNoHandlerFound(true);
        dispatcher.setDispatchOptionsRequest(true);
        dispatcher.setDispatchTraceRequest(true);
        ServletHolder holder = new ServletHolder("dispatcher", dispatcher);
        holder.setInitOrder(0);
        ServletContextHandler context = new ServletContextHandler();
        context.addServlet(holder, "/");
        context.setErrorHandler(new ContractErrors.JettyErrors());
        return context;
    }

    /** SIGTERM or SIGINT: Jetty's graceful stop (no new connections, in-flight requests finish
     * within the deadline), then exit 0, or 1 if a request was still running. */
    private static void drainAndExit(Server server, StatisticsHandler requests, Database database) {
        int code = 0;
        try {
            server.stop();
        } catch (Exception timedOut) {
            code = 1;
        }
        if (requests.getRequestsActive() > 0) {
            code = 1;
        }
        database.close();
        System.exit(code);
    }

    private static Settings startup(String[] arguments) {
        if (arguments.length > 0) {
            switch (arguments[0]) {
                case "--help":
                case "-h":
                    System.out.print(Help.TEXT);
                    System.exit(0);
                    break;
                case "--version":
                case "-V":
                    System.out.println(VARIANT + " " + VERSION);
                    System.exit(0);
                    break;
                default:
                    System.err.println("error: unexpected argument \"" + arguments[0]
                            + "\"; configuration is by environment variables (see --help)");
                    System.exit(2);
            }
        }
        try {
            return Settings.fromEnvironment(System.getenv());
        } catch (Settings.ConfigError error) {
            System.err.println("error: " + error.getMessage());
            System.exit(2);
            throw new IllegalStateException("unreachable");
        }
    }

    private static byte[] resource(String name) {
        try (InputStream input = Main.class.getResourceAsStream(name)) {
            if (input == null) {
                throw new IllegalStateException(name + " is not on the classpath");
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            byte[] buffer = new byte[8192];
            for (int read; (read = input.read(buffer)) > 0; ) {
                bytes.write(buffer, 0, read);
            }
            return bytes.toByteArray();
        } catch (IOException error) {
            throw new UncheckedIOException(error);
        }
    }

    private static String documentVersion() {
        try {
            JsonNode document = JSON.readTree(OPENAPI_DOCUMENT);
            return document.path("info").path("version").asText();
        } catch (IOException error) {
            throw new UncheckedIOException(error);
        }
    }
}

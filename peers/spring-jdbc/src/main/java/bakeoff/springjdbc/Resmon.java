package bakeoff.springjdbc;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

/** {@code GET /test/resmon} ({@code core::resmon}): the JVM reading itself from /proc. */
final class Resmon {
    /** Linux's USER_HZ, 100 on every architecture the JVM runs Linux on. */
    private static final double TICKS_PER_SECOND = 100;

    private Resmon() {}

    static Model.ResourceSnapshot snapshot(Settings settings) throws IOException {
        String stat = read("/proc/self/stat");
        // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).trim().split("\\s+");
        // fields[0] is field 3 of proc(5) (state); field N is fields[N - 3].
        double userTicks = Double.parseDouble(fields[14 - 3]);
        double systemTicks = Double.parseDouble(fields[15 - 3]);
        long threads = Long.parseLong(fields[20 - 3]);
        double startTicks = Double.parseDouble(fields[22 - 3]);
        double systemUptime = Double.parseDouble(read("/proc/uptime").trim().split("\\s+")[0]);
        return new Model.ResourceSnapshot(
                Main.VARIANT,
                ProcessHandle.current().pid(),
                threads,
                rssBytes(),
                userTicks / TICKS_PER_SECOND,
                systemTicks / TICKS_PER_SECOND,
                Math.max(systemUptime - startTicks / TICKS_PER_SECOND, 0),
                settings.workers,
                settings.dbPoolSize,
                settings.dbRecycle.value());
    }

    /** VmRSS from /proc/self/status (in kB there), which needs no page size. */
    private static long rssBytes() throws IOException {
        for (String line : read("/proc/self/status").split("\n")) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return 0;
    }

    private static String read(String path) throws IOException {
        return new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.US_ASCII);
    }
}

package dev.flinksched.sql;

import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.Path;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.internal.TableEnvironmentImpl;
import org.apache.flink.table.resource.ResourceManager;
import org.apache.flink.util.MutableURLClassLoader;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.reflect.Field;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Runs a Flink SQL script as one job, for the Flink lines that have no SQL driver of their own
 * (1.x). Takes the same arguments as Flink 2's SqlDriver: {@code --script TEXT} or
 * {@code --scriptUri URI} (read through Flink's filesystems).
 *
 * <p>Statements are separated by semicolons outside quotes and comments. Each statement that is
 * not an INSERT runs as it comes (CREATE, SET, USE, ...); the INSERTs, and those of an {@code
 * EXECUTE STATEMENT SET BEGIN ... END} block, go into one statement set, submitted at the end
 * as the script's one job. A statement Flink rejects fails the program with Flink's message,
 * prefixed by the line of the script the statement starts on.
 *
 * <p>A function's jar ({@code CREATE FUNCTION ... USING JAR}, {@code ADD JAR}) is loaded by the
 * table environment's own class loader, which Flink 1.x does not use when it turns the program
 * into a job graph: with checkpointing on, the planner's generated operators then fail to compile
 * against the function (FLINK-28897, fixed in 2.0). The runner adds those jars to the class loader
 * the JobManager runs it with before it submits the job.
 */
public final class SqlRunner {

    private SqlRunner() {}

    public static void main(String[] args) throws Exception {
        String script = null;
        for (int i = 0; i < args.length; i++) {
            if ("--script".equals(args[i]) && i + 1 < args.length) {
                script = args[++i];
            } else if ("--scriptUri".equals(args[i]) && i + 1 < args.length) {
                script = read(args[++i]);
            } else {
                throw new IllegalArgumentException(
                        "unknown argument " + args[i] + ": give --script TEXT or --scriptUri URI");
            }
        }
        if (script == null) {
            throw new IllegalArgumentException("give --script TEXT or --scriptUri URI");
        }
        List<Statement> statements = split(script);
        if (statements.isEmpty()) {
            throw new IllegalArgumentException("the SQL script has no statement");
        }
        TableEnvironment tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        StatementSet inserts = tables.createStatementSet();
        int added = 0;
        for (Statement statement : statements) {
            String text = statement.text;
            String head = firstWords(text);
            if (head.startsWith("EXECUTE STATEMENT SET BEGIN") || head.startsWith("BEGIN STATEMENT SET")) {
                text = text.substring(text.toUpperCase(Locale.ROOT).indexOf("BEGIN") + 5).trim();
                head = firstWords(text);
            }
            if (head.equals("END") || text.isEmpty()) {
                continue;
            }
            try {
                if (head.startsWith("INSERT")) {
                    inserts.addInsertSql(text);
                    added++;
                } else {
                    tables.executeSql(text);
                }
            } catch (RuntimeException e) {
                throw new IllegalArgumentException(
                        "SQL statement at line " + statement.line + ": " + e.getMessage(), e);
            }
        }
        if (added == 0) {
            throw new IllegalArgumentException(
                    "the SQL script has no INSERT statement: nothing would run as a job");
        }
        shareFunctionJars(tables);
        inserts.execute();
    }

    /** Makes the jars the script registered visible to the class loader this program runs in. */
    static void shareFunctionJars(TableEnvironment tables) throws ReflectiveOperationException {
        if (!(tables instanceof TableEnvironmentImpl)
                || !(SqlRunner.class.getClassLoader() instanceof MutableURLClassLoader)) {
            return;
        }
        Field field = TableEnvironmentImpl.class.getDeclaredField("resourceManager");
        field.setAccessible(true);
        ResourceManager resources = (ResourceManager) field.get(tables);
        MutableURLClassLoader own = (MutableURLClassLoader) SqlRunner.class.getClassLoader();
        List<URL> present = List.of(own.getURLs());
        for (URL jar : resources.getLocalJarResources()) {
            if (!present.contains(jar)) {
                own.addURL(jar);
            }
        }
    }

    /** A statement of the script and the line it starts on (1-based). */
    static final class Statement {
        final String text;
        final int line;

        Statement(String text, int line) {
            this.text = text;
            this.line = line;
        }
    }

    /** The script's statements: split on semicolons outside quotes and comments. */
    static List<Statement> split(String script) {
        List<Statement> found = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        int line = 1;
        int startLine = -1;
        char quote = 0;
        for (int i = 0; i < script.length(); i++) {
            char c = script.charAt(i);
            char next = i + 1 < script.length() ? script.charAt(i + 1) : 0;
            if (quote == 0 && c == '-' && next == '-') {
                while (i < script.length() && script.charAt(i) != '\n') {
                    i++;
                }
                line++;
                current.append('\n');
                continue;
            }
            if (quote == 0 && c == '/' && next == '*') {
                int end = script.indexOf("*/", i + 2);
                end = end < 0 ? script.length() : end + 2;
                for (int j = i; j < end; j++) {
                    if (script.charAt(j) == '\n') {
                        line++;
                        current.append('\n');
                    }
                }
                i = end - 1;
                continue;
            }
            if (c == '\n') {
                line++;
            }
            if (quote == 0 && c == ';') {
                add(found, current, startLine);
                current.setLength(0);
                startLine = -1;
                continue;
            }
            if (quote == 0 && (c == '\'' || c == '"' || c == '`')) {
                quote = c;
            } else if (quote == c) {
                quote = 0;
            }
            if (startLine < 0 && !Character.isWhitespace(c)) {
                startLine = line;
            }
            current.append(c);
        }
        add(found, current, startLine);
        return found;
    }

    private static void add(List<Statement> found, StringBuilder current, int line) {
        String text = current.toString().trim();
        if (!text.isEmpty()) {
            found.add(new Statement(text, line));
        }
    }

    private static String firstWords(String text) {
        return text.trim().replaceAll("\\s+", " ").toUpperCase(Locale.ROOT);
    }

    private static String read(String uri) throws IOException {
        Path path = new Path(uri);
        FileSystem fs = path.getFileSystem();
        try (FSDataInputStream in = fs.open(path)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[8192];
            for (int n; (n = in.read(buffer)) > 0; ) {
                out.write(buffer, 0, n);
            }
            return new String(out.toByteArray(), StandardCharsets.UTF_8);
        }
    }
}

package dev.flinksched.listener;

import java.nio.charset.StandardCharsets;

/** One job status change, as flinksched reads it from ZooKeeper (a small JSON object). */
final class PushEvent {
    static final int MAX_CAUSE = 500;
    static final int MAX_CAUSE_DEPTH = 64;

    final String jobId;
    final String from;
    final String to;
    final long time;
    final String cause;

    PushEvent(String jobId, String from, String to, long time, String cause) {
        this.jobId = jobId;
        this.from = from;
        this.to = to;
        this.time = time;
        this.cause = cause;
    }

    /** The upper half of the job id: a flinksched job's name prefix. */
    String prefix() {
        return jobId.substring(0, Math.min(16, jobId.length()));
    }

    static String firstLine(Throwable error) {
        if (error == null) {
            return "";
        }
        Throwable root = error;
        // Bounded: a cause chain can loop, and this runs in the JobManager's main thread.
        for (int depth = 0; depth < MAX_CAUSE_DEPTH && root.getCause() != null
                && root.getCause() != root; depth++) {
            root = root.getCause();
        }
        String line = root.getClass().getName()
                + (root.getMessage() == null ? "" : ": " + root.getMessage());
        int end = line.indexOf('\n');
        line = end >= 0 ? line.substring(0, end) : line;
        return line.length() > MAX_CAUSE ? line.substring(0, MAX_CAUSE) : line;
    }

    byte[] json(String cluster, long sequence) {
        return ("{\"jobId\":" + quote(jobId) + ",\"from\":" + quote(from) + ",\"to\":" + quote(to)
                + ",\"time\":" + time + ",\"cause\":" + quote(cause) + ",\"cluster\":"
                + quote(cluster) + ",\"sequence\":" + sequence + "}")
                .getBytes(StandardCharsets.UTF_8);
    }

    static String quote(String text) {
        StringBuilder out = new StringBuilder(text.length() + 2).append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}

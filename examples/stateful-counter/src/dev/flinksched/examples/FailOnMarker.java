package dev.flinksched.examples;

import java.io.File;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * A SQL function for injecting a failure from outside into a Python or SQL job, as
 * StatefulCounter's --fail-marker does for the jar job: {@code fail_on_marker(value, path)}
 * returns the value, and fails the job once when the file at {@code path} exists (deleting
 * it first, so the restarted job runs on).
 */
public class FailOnMarker extends ScalarFunction {

    public Long eval(Long value, String marker) {
        if (marker != null && !marker.isEmpty()) {
            File file = new File(marker);
            if (file.exists() && file.delete()) {
                throw new IllegalStateException("injected failure: " + marker + " was present");
            }
        }
        return value;
    }
}

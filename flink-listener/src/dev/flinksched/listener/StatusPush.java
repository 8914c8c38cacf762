package dev.flinksched.listener;

import org.apache.flink.core.execution.JobExecutionStatusEvent;
import org.apache.flink.core.execution.JobStatusChangedEvent;
import org.apache.flink.core.execution.JobStatusChangedListener;

/**
 * Called in the JobManager's main thread: it only hands the event to the channel's bounded
 * queue and returns. Nothing here blocks, and nothing here throws into Flink.
 */
final class StatusPush implements JobStatusChangedListener {
    private final PushChannel channel;

    StatusPush(PushChannel channel) {
        this.channel = channel;
    }

    @Override
    public void onEvent(JobStatusChangedEvent event) {
        try {
            if (event instanceof JobExecutionStatusEvent) {
                JobExecutionStatusEvent status = (JobExecutionStatusEvent) event;
                channel.offer(new PushEvent(
                        status.jobId().toHexString(),
                        String.valueOf(status.oldStatus()),
                        String.valueOf(status.newStatus()),
                        System.currentTimeMillis(),
                        PushEvent.firstLine(status.exception())));
            }
        } catch (Throwable t) {
            channel.failed(t);
        }
    }
}

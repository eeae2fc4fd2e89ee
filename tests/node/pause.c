/*
 * The local node's pause image (tests/node/images.sh builds it static, as the image's only file).
 *
 * A pod sandbox's first process holds the pod's namespaces open for its containers. As PID 1 of the
 * sandbox it must also reap the orphans re-parented to it (zombies would otherwise pile up), and it
 * must end promptly on SIGTERM/SIGINT: the kubelet stops a sandbox with SIGTERM, and a process that
 * ignored it would cost every pod deletion the whole grace period before SIGKILL. The default
 * action of a signal that PID 1 of a namespace has no handler for is to be ignored, hence the
 * explicit handlers. Kubernetes' own pause does the same.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    /* Exit status 0: a sandbox told to stop has done its job. _exit is async-signal-safe. */
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    /* Every child that ended since the last signal: SIGCHLD does not queue, one may stand for many. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static int handle(int sig, void (*handler)(int), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    return sigaction(sig, &action, NULL);
}

int main(void) {
    if (handle(SIGTERM, on_stop, 0) < 0 || handle(SIGINT, on_stop, 0) < 0 ||
        handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    if (getpid() != 1) {
        /* Still useful (a test may run it directly), but then it reaps nothing of the pod's. */
        fputs("pause: warning: not PID 1, orphans are not re-parented to this process\n", stderr);
    }
    for (;;) {
        pause();
    }
}

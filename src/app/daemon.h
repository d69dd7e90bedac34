#ifndef OKRD_APP_DAEMON_H_
#define OKRD_APP_DAEMON_H_

// The okrd daemon: parses the command line, loads the config, opens the
// event log, rebuilds the projection from it, serves HTTP and runs the Kafka
// ingest until SIGTERM or SIGINT.
//
// Exit codes: 0 after a clean stop, 1 on a runtime failure (log or Kafka),
// 2 on a bad command line or config.

namespace okrd::app {

int RunDaemon(int argc, char** argv);

}  // namespace okrd::app

#endif  // OKRD_APP_DAEMON_H_

// okrctl: the operator tool of okrd.

#include <cstdio>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/version.h"
#include "okrctl/commands.h"

namespace {

constexpr char kUsage[] = R"(usage: okrctl COMMAND [args]

commands:
  config check FILE                 validate a config file
  log stats    --data-dir DIR [--json]
  log tail     --data-dir DIR [-n N] [--json]     newest accepted events
  log get      --data-dir DIR (SEQUENCE | --event-id ID) [--json]
  log rejected --data-dir DIR [-n N] [--json]     newest rejected messages
  log verify   --data-dir DIR     check every invariant of the log (exit 0/1)
  log import   --config F --data-dir DIR --file EVENTS.jsonl
               [--ingest-time RFC3339] [--batch N]  bulk-load events
  replay --config F --data-dir DIR [--until RFC3339 | --until-seq N]
         [--format prometheus|json]   projections as of a point of the log
  broker [--partitions N] [--topic T]... [--addr-file F]
                                    run an embedded Kafka broker on 127.0.0.1
  produce --brokers ADDR --topic T [--config F | --kpi ID...] [--count N]
          [--rate PER_SEC] [--subjects N | --subject NAME...] [--seed S]
          [--format protobuf|json]
          [--event-time RFC3339] [--file EVENTS.jsonl]
          [--framing none|confluent] [--schema-id N]
                                    send sample, generated or file events
  pseudonym --config F SUBJECT...   the exported pseudonym of subjects
                                    (for an authorised operator)
  version
)";

}  // namespace

namespace okrd::okrctl {

int Usage(const std::string& message) {
  std::fprintf(stderr, "okrctl: %s\n", message.c_str());
  return 2;
}

}  // namespace okrd::okrctl

int main(int argc, char** argv) {
  using namespace okrd::okrctl;
  (void)okrd::InitLogging("info");
  if (argc < 2 || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "config") return ConfigCommand(rest);
  if (command == "log") return LogCommand(rest);
  if (command == "broker") return BrokerCommand(rest);
  if (command == "produce") return ProduceCommand(rest);
  if (command == "replay") return ReplayCommand(rest);
  if (command == "pseudonym") return PseudonymCommand(rest);
  if (command == "version" || command == "--version") {
    std::printf("okrctl %s\n", okrd::Version());
    return 0;
  }
  return Usage("unknown command \"" + command + "\" (see okrctl --help)");
}

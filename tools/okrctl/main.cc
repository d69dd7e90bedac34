// okrctl: the operator tool of okrd.

#include <cstdio>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/version.h"
#include "okrctl/commands.h"

namespace {

// Each command's usage, as `okrctl COMMAND --help` prints it; together,
// with the header, okrctl's usage.
struct CommandHelp {
  const char* name;
  const char* usage;
};
constexpr CommandHelp kCommands[] = {
    {"config", R"(  config check FILE                 validate a config file
)"},
    {"log", R"(  log stats    --data-dir DIR [--json]
  log tail     --data-dir DIR [-n N] [--json]     newest accepted events
  log get      --data-dir DIR (SEQUENCE | --event-id ID) [--json]
  log rejected --data-dir DIR [-n N] [--json]     newest rejected messages
  log verify   --data-dir DIR     check every invariant of the log (exit 0/1)
  log import   --config F --data-dir DIR --file EVENTS.jsonl
               [--ingest-time RFC3339] [--batch N]  bulk-load events
)"},
    {"replay",
     R"(  replay --config F --data-dir DIR [--until RFC3339 | --until-seq N]
         [--format prometheus|json]   projections as of a point of the log
)"},
    {"broker", R"(  broker [--partitions N] [--topic T]... [--addr-file F]
                                    run an embedded Kafka broker on 127.0.0.1
)"},
    {"produce",
     R"(  produce --brokers ADDR --topic T [--config F | --kpi ID...] [--count N]
          [--rate PER_SEC] [--subjects N | --subject NAME...] [--seed S]
          [--format protobuf|json]
          [--event-time RFC3339] [--file EVENTS.jsonl]
          [--framing none|confluent] [--schema-id N]
                                    send sample, generated or file events
)"},
    {"pseudonym",
     R"(  pseudonym --config F SUBJECT...   the exported pseudonym of subjects
                                    (for an authorised operator)
)"},
    {"version", R"(  version
)"},
};

std::string Usage() {
  std::string out = "usage: okrctl COMMAND [args]\n\ncommands:\n";
  for (const CommandHelp& c : kCommands) out += c.usage;
  out += "\n`okrctl COMMAND --help` or `okrctl help COMMAND`: one command.\n";
  return out;
}

// The usage of `command`, or nullptr when there is no such command.
const char* UsageOf(const std::string& command) {
  for (const CommandHelp& c : kCommands) {
    if (command == c.name) return c.usage;
  }
  return nullptr;
}

bool IsHelp(const std::string& arg) { return arg == "--help" || arg == "-h"; }

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
  if (argc < 2 || IsHelp(argv[1]) ||
      (std::string(argv[1]) == "help" && argc == 2)) {
    std::fputs(Usage().c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  // `okrctl help COMMAND`, or --help anywhere after a command.
  bool help = false;
  if (command == "help") {
    command = rest.front();
    help = true;
  }
  for (const std::string& arg : rest) help = help || IsHelp(arg);
  if (help) {
    const char* usage = UsageOf(command);
    if (usage == nullptr) {
      return Usage("unknown command \"" + command + "\" (see okrctl --help)");
    }
    std::printf("usage:\n%s", usage);
    return 0;
  }
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

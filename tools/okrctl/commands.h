#ifndef OKRD_TOOLS_OKRCTL_COMMANDS_H_
#define OKRD_TOOLS_OKRCTL_COMMANDS_H_

// okrctl's subcommands. Each takes the arguments after its name and returns
// the process exit code: 0 ok, 1 runtime failure, 2 bad usage or input.

#include <string>
#include <vector>

namespace okrd::okrctl {

int ConfigCommand(const std::vector<std::string>& args);
int LogCommand(const std::vector<std::string>& args);
int BrokerCommand(const std::vector<std::string>& args);
int ProduceCommand(const std::vector<std::string>& args);
int ReplayCommand(const std::vector<std::string>& args);
int PseudonymCommand(const std::vector<std::string>& args);

// Prints "okrctl: MESSAGE" on stderr and returns 2.
int Usage(const std::string& message);

}  // namespace okrd::okrctl

#endif  // OKRD_TOOLS_OKRCTL_COMMANDS_H_

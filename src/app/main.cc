#include "app/daemon.h"

int main(int argc, char** argv) { return okrd::app::RunDaemon(argc, argv); }

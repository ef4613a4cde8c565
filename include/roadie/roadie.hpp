// Everything roadie offers, in one include.
#pragma once

#include "roadie/artifacts.hpp"
#include "roadie/clock.hpp"
#include "roadie/command.hpp"
#include "roadie/error.hpp"
#include "roadie/executor.hpp"
#include "roadie/exit_status.hpp"
#include "roadie/hooks.hpp"
#include "roadie/output.hpp"
#include "roadie/ports.hpp"
#include "roadie/process.hpp"
#include "roadie/ready.hpp"
#include "roadie/runtime.hpp"
#include "roadie/scheduler.hpp"
#include "roadie/stack.hpp"
#include "roadie/subscription.hpp"

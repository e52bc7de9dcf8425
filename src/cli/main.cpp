// ckpt: checkpoint and restore Linux processes.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string_view>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "image/info.h"
#include "restore/restore.h"
#include "tracer/dump.h"
#include "tracer/fault.h"

int main(int argc, char** argv) {
    // A dump takes its stop requests (SIGINT, SIGTERM, SIGHUP) from the very start, so that
    // one arriving while ckpt starts up is reported like any other, not a silent death.
    // (The subcommand is the first word that is not an option: only -v, --help and
    // --version may come before it.)
    for (int k = 1; k < argc; ++k) {
        if (argv[k][0] == '-') continue;
        if (std::string_view(argv[k]) == "dump") ckpt::interrupt::install();
        break;
    }
    CLI::App app{"ckpt: checkpoint and restore running Linux processes"};
    app.set_version_flag("--version", CKPT_VERSION);
    app.require_subcommand(1);
    // -v is accepted before and after the subcommand (README: `ckpt dump ... -v`): one
    // counter per place, added up.
    int verbose[4] = {};
    app.add_flag("-v,--verbose", verbose[0], "More diagnostics on stderr (-vv for debug)");

    ckpt::tracer::DumpOptions dump;
    std::string fault;
    auto* d = app.add_subcommand("dump", "Checkpoint a running process into an image directory");
    d->add_option("-p,--pid", dump.pid, "Process to checkpoint")->required();
    d->add_option("-o,--images-dir", dump.dir, "Directory to write the image into")->required();
    d->add_flag("-R,--leave-running", dump.leave_running, "Let the process continue after the dump");
    d->add_flag("--overwrite", dump.overwrite,
                "Replace an image already in the directory (once the new one is complete)");
    d->add_flag("--print-stats", dump.print_stats, "Print timing and size figures (key=value)");
    d->add_option("--fault-inject", fault,
                  "Make the named dump step fail (testing; STEP:kill SIGKILLs ckpt there, STEP:stop stops it)");
    // runs while parsing, before the check for the required options it does not need
    d->add_flag_callback("--list-fault-steps", [] {
        for (auto s : ckpt::fault::dump_steps())
            fmt::print("{}{}\n", s.name, s.kill_only ? " kill-only" : "");
        throw CLI::Success();
    }, "List the steps --fault-inject accepts");
    d->add_flag("-v,--verbose", verbose[1], "More diagnostics on stderr (-vv for debug)");

    ckpt::restore::RestoreOptions restore;
    auto* r = app.add_subcommand("restore", "Restore a process from an image directory");
    r->add_option("-D,--images-dir", restore.dir, "Image directory")->required();
    r->add_flag("-d,--detach", restore.detach, "Do not wait for the restored process");
    r->add_flag("--shell-job", restore.shell_job, "Give the restored process this terminal");
    r->add_option("--inherit-fd", restore.inherit_fds,
                  "fd[N]:pipe:[INODE]: this fd of ckpt restore is the pipe the tree had to outside itself "
                  "(ckpt info lists them); repeatable")->type_name("fd[N]:RES");
    r->add_flag("--inherit-stdio", restore.inherit_stdio,
                "Connect every pipe to outside the tree that the tree had as stdin, stdout or stderr to "
                "ckpt restore's own fd 0, 1 or 2");
    r->add_flag("--print-stats", restore.print_stats, "Print timing figures (key=value)");
    r->add_flag("-v,--verbose", verbose[2], "More diagnostics on stderr (-vv for debug)");
    r->add_flag("--allow-changed-files", restore.allow_changed_files,
                "Restore even if open or mapped files changed since the dump (size, mtime, "
                "ELF build-id); each difference is still reported");

    ckpt::image::InfoOptions info;
    std::string info_dir;
    auto* i = app.add_subcommand("info", "Show what an image holds");
    i->add_option("dir", info_dir, "Image directory")->required();
    i->add_flag("--json", info.json, "Every record and field, as JSON");
    i->add_flag("--backtrace", info.backtrace, "Each thread's stack at dump time");
    i->add_flag("--verify", info.verify,
                "Also check the checksum of all page data (reads the whole data.img)");
    i->add_flag("-v,--verbose", verbose[3], "More diagnostics on stderr (-vv for debug)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help, --version, --list-fault-steps: their output, exit 0
        if (e.get_exit_code() == 0) return app.exit(e);
        // like every other error: one line, exit 1
        std::string where = "ckpt";
        for (const auto* sub : {d, r, i})
            if (sub->parsed()) where += " " + sub->get_name();
        std::string what = e.what();
        for (char& c : what)
            if (c == '\n') c = ' ';
        if (where == "ckpt" && !app.remaining().empty())  // not "A subcommand is required"
            what = fmt::format("unknown command '{}'", app.remaining().front());
        fmt::print(stderr, "ckpt: error: {} (see {} --help)\n", what, where);
        return 1;
    }
    ckpt::log::verbosity = verbose[0] + verbose[1] + verbose[2] + verbose[3];
    try {
        if (d->parsed()) {
            if (dump.pid <= 0) ckpt::fail("dump needs a positive --pid, not {}", dump.pid);
            if (!fault.empty()) ckpt::fault::arm(fault);
            try {
                ckpt::tracer::dump(dump);
            } catch (const ckpt::interrupt::Interrupted& e) {
                // Reaching here means the rollback has run: the target is as it was.
                fmt::print(stderr, "ckpt: error: interrupted; process {} left running\n", dump.pid);
                return 1;
            }
            return 0;
        }
        if (r->parsed()) return ckpt::restore::restore(restore);
        if (i->parsed()) {
            ckpt::image::print_info(info_dir, info, stdout);
            return 0;
        }
    } catch (const std::exception& e) {
        std::fflush(stdout);
        fmt::print(stderr, "ckpt: error: {}\n", e.what());
        return 1;
    }
    return 1;
}

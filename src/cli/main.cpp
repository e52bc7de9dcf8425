// ckpt: checkpoint and restore Linux processes.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "common/error.h"
#include "common/log.h"
#include "image/info.h"
#include "restore/restore.h"
#include "tracer/dump.h"
#include "tracer/fault.h"

int main(int argc, char** argv) {
    CLI::App app{"ckpt: checkpoint and restore running Linux processes"};
    app.set_version_flag("--version", CKPT_VERSION);
    app.require_subcommand(1);
    int verbose = 0;
    app.add_flag("-v,--verbose", verbose, "More diagnostics on stderr (-vv for debug)");

    ckpt::tracer::DumpOptions dump;
    bool list_faults = false;
    std::string fault;
    auto* d = app.add_subcommand("dump", "Checkpoint a running process into an image directory");
    d->add_option("-p,--pid", dump.pid, "Process to checkpoint");
    d->add_option("-o,--images-dir", dump.dir, "Directory to write the image into");
    d->add_flag("-R,--leave-running", dump.leave_running, "Let the process continue after the dump");
    d->add_flag("--print-stats", dump.print_stats, "Print timing and size figures (key=value)");
    d->add_option("--fault-inject", fault, "Make the named dump step fail (testing)");
    d->add_flag("--list-fault-steps", list_faults, "List the steps --fault-inject accepts");

    ckpt::restore::RestoreOptions restore;
    auto* r = app.add_subcommand("restore", "Restore a process from an image directory");
    r->add_option("-D,--images-dir", restore.dir, "Image directory")->required();
    r->add_flag("-d,--detach", restore.detach, "Do not wait for the restored process");
    r->add_flag("--shell-job", restore.shell_job, "Give the restored process this terminal");
    r->add_flag("--print-stats", restore.print_stats, "Print timing figures (key=value)");
    r->add_flag("--allow-changed-files", restore.allow_changed_files,
                "Restore even if open or mapped files changed since the dump (size, mtime, "
                "ELF build-id); each difference is still reported");

    ckpt::image::InfoOptions info;
    std::string info_dir;
    auto* i = app.add_subcommand("info", "Show what an image holds");
    i->add_option("dir", info_dir, "Image directory")->required();
    i->add_flag("--json", info.json, "Every record and field, as JSON");
    i->add_flag("--backtrace", info.backtrace, "Each thread's stack at dump time");

    CLI11_PARSE(app, argc, argv);
    ckpt::log::verbosity = verbose;
    try {
        if (d->parsed()) {
            if (list_faults) {
                for (auto s : ckpt::fault::dump_steps()) fmt::print("{}\n", s);
                return 0;
            }
            if (dump.pid <= 0) ckpt::fail("dump needs --pid");
            if (dump.dir.empty()) ckpt::fail("dump needs -o DIR");
            if (!fault.empty()) ckpt::fault::arm(fault);
            ckpt::tracer::dump(dump);
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

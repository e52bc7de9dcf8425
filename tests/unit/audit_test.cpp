// The audit tables (tracer/audit.h): every descriptor kind resolves to a table entry,
// unknown kinds to none (so their message differs from a known refused kind), and the
// VMA flags every ordinary process carries are never refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <set>
#include <string>
#include <string_view>

#include "common/fs.h"
#include "tracer/audit.h"
#include "tracer/proc_parse.h"

namespace ckpt::test {
namespace {

using tracer::classify_fd;
using tracer::classify_vm_flag;
using tracer::VmFlagUse;

struct stat mode_stat(mode_t mode, dev_t rdev = 0, nlink_t nlink = 1) {
    struct stat st{};
    st.st_mode = mode;
    st.st_rdev = rdev;
    st.st_nlink = nlink;
    return st;
}

constexpr int64_t kAnonMagic = 0x09041934;
constexpr int64_t kTmpfsMagic = 0x01021994;

TEST(AuditFdKinds, NamesAreUnique) {
    std::set<std::string_view> names;
    for (const auto& k : tracer::fd_kinds()) {
        EXPECT_TRUE(names.insert(k.name).second) << k.name;
        EXPECT_EQ(k.saved_as.has_value(), k.why.empty()) << k.name << ": refused kinds say why, saved ones not";
    }
}

TEST(AuditFdKinds, EveryAnonInodeEntryMatchesItsOwnForm) {
    for (const auto& k : tracer::fd_kinds()) {
        if (!k.form.starts_with("anon_inode:") || k.form.ends_with(":N") || k.form.ends_with("-DEVICE")) continue;
        const auto* got = classify_fd(k.form, mode_stat(0), kAnonMagic);
        ASSERT_NE(got, nullptr) << k.form;
        EXPECT_EQ(got->name, k.name);
    }
}

TEST(AuditFdKinds, UnknownAnonInodeIsNotInTheTable) {
    EXPECT_EQ(classify_fd("anon_inode:[no-such-kind]", mode_stat(0), kAnonMagic), nullptr);
    EXPECT_EQ(classify_fd("anon_inode:", mode_stat(0), kAnonMagic), nullptr);
}

TEST(AuditFdKinds, KvmNamesWithNumbers) {
    EXPECT_EQ(classify_fd("anon_inode:kvm-vcpu:3", mode_stat(0), kAnonMagic)->name, "KVM vCPU");
    EXPECT_EQ(classify_fd("anon_inode:kvm-vm", mode_stat(0), kAnonMagic)->name, "KVM VM");
}

TEST(AuditFdKinds, FileTypes) {
    EXPECT_EQ(*classify_fd("/etc/passwd", mode_stat(S_IFREG | 0644), 0xef53)->saved_as, image::FdKind::Regular);
    EXPECT_EQ(*classify_fd("/tmp/x (deleted)", mode_stat(S_IFREG | 0644, 0, 0), 0xef53)->saved_as,
              image::FdKind::Unlinked);
    EXPECT_EQ(classify_fd("/memfd:x (deleted)", mode_stat(S_IFREG | 0644, 0, 0), kTmpfsMagic)->name, "memfd");
    EXPECT_EQ(*classify_fd("/tmp", mode_stat(S_IFDIR | 0755), 0xef53)->saved_as, image::FdKind::Directory);
    EXPECT_EQ(*classify_fd("/dev/null", mode_stat(S_IFCHR | 0666, makedev(1, 3)), kTmpfsMagic)->saved_as,
              image::FdKind::CharDev);
    EXPECT_EQ(*classify_fd("/dev/pts/3", mode_stat(S_IFCHR | 0620, makedev(136, 3)), 0x1cd1)->saved_as,
              image::FdKind::Tty);
    EXPECT_EQ(classify_fd("/dev/ptmx", mode_stat(S_IFCHR | 0666, makedev(5, 2)), kTmpfsMagic)->name,
              "pseudo-terminal master");
    EXPECT_EQ(classify_fd("/dev/kmsg", mode_stat(S_IFCHR | 0644, makedev(1, 11)), kTmpfsMagic)->name,
              "character device");
    EXPECT_EQ(classify_fd("/dev/fuse", mode_stat(S_IFCHR | 0666, makedev(10, 229)), kTmpfsMagic)->name,
              "character device");
    EXPECT_EQ(classify_fd("/dev/null (deleted)", mode_stat(S_IFCHR | 0666, makedev(1, 3)), kTmpfsMagic)->name,
              "deleted device node");
    EXPECT_EQ(classify_fd("/dev/sda", mode_stat(S_IFBLK | 0660, makedev(8, 0)), kTmpfsMagic)->name, "block device");
    EXPECT_EQ(classify_fd("socket:[12]", mode_stat(S_IFSOCK | 0777), 0x534f434b)->name, "socket");
    EXPECT_EQ(classify_fd("pipe:[12]", mode_stat(S_IFIFO | 0600), 0x50495045)->name, "pipe");
    EXPECT_EQ(classify_fd("/tmp/fifo", mode_stat(S_IFIFO | 0600), 0xef53)->name, "FIFO");
    EXPECT_EQ(classify_fd("/q (deleted)", mode_stat(S_IFREG | 0600, 0, 0), 0x19800202)->name,
              "POSIX message queue");
    EXPECT_EQ(classify_fd("net:[4026531840]", mode_stat(S_IFREG | 0444), 0x6e736673)->name,
              "namespace descriptor");
    EXPECT_EQ(classify_fd("/secretmem (deleted)", mode_stat(S_IFREG | 0600, 0, 0), 0x5345434d)->name,
              "memfd_secret");
    EXPECT_EQ(classify_fd("/weird", mode_stat(0), 0x1234), nullptr);
}

TEST(AuditVmFlags, UnknownCodeIsNotInTheTable) {
    EXPECT_EQ(classify_vm_flag("zz"), nullptr);
    EXPECT_EQ(classify_vm_flag(""), nullptr);
}

TEST(AuditVmFlags, CodesAreUniqueAndTwoLetters) {
    std::set<std::string_view> codes;
    for (const auto& f : tracer::vm_flags()) {
        EXPECT_EQ(f.code.size(), 2u) << f.code;
        EXPECT_TRUE(codes.insert(f.code).second) << f.code;
    }
}

TEST(AuditVmFlags, RefusedOnes) {
    for (auto code : {"um", "uw", "ui", "io", "pf", "ht", "dp", "sl", "ss"})
        EXPECT_EQ(classify_vm_flag(code)->use, VmFlagUse::Refused) << code;
}

// This test process (threads, libraries, stack, heap) carries only flags ckpt keeps, apart
// from the kernel's own mappings.
TEST(AuditVmFlags, NothingOfThisProcessIsRefused) {
    auto maps = proc::parse_maps(read_file("/proc/self/maps"));
    auto flags = proc::parse_smaps_vmflags(read_file("/proc/self/smaps"));
    for (const auto& m : maps) {
        if (m.path == "[vvar]" || m.path == "[vvar_vclock]" || m.path == "[vdso]" || m.path == "[vsyscall]") continue;
        for (const auto& code : flags.at(m.start)) {
            const auto* f = classify_vm_flag(code);
            ASSERT_NE(f, nullptr) << "unknown VmFlag " << code << " on " << m.path;
            EXPECT_NE(f->use, VmFlagUse::Refused) << code << " on " << std::hex << m.start << " " << m.path;
        }
    }
}

}  // namespace
}  // namespace ckpt::test

#include "image/codec.h"

#include <xxhash.h>

namespace ckpt::image {

const char* record_name(RecordType t) {
    switch (t) {
        case RecordType::Header: return "Header";
        case RecordType::Process: return "Process";
        case RecordType::Thread: return "Thread";
        case RecordType::Vma: return "Vma";
        case RecordType::PageRun: return "PageRun";
        case RecordType::Fd: return "Fd";
        case RecordType::EventFd: return "EventFd";
        case RecordType::SignalFd: return "SignalFd";
        case RecordType::TimerFd: return "TimerFd";
        case RecordType::EpollTarget: return "EpollTarget";
        case RecordType::FileLock: return "FileLock";
        case RecordType::InotifyWatch: return "InotifyWatch";
        case RecordType::Memfd: return "Memfd";
        case RecordType::SysvShm: return "SysvShm";
        case RecordType::UnixSocket: return "UnixSocket";
        case RecordType::InetSocket: return "InetSocket";
        case RecordType::Pty: return "Pty";
        case RecordType::End: return "End";
    }
    return "unknown";
}

uint64_t payload_checksum(RecordType t, const void* data, size_t size) {
    return XXH3_64bits_withSeed(data, size, static_cast<uint64_t>(t));
}

}  // namespace ckpt::image

import CStatorSys

/// How the agent process asks glibc to manage its heap.
///
/// glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
/// after the first flush of a large batch, the batch arrays, pages and rehashed tables of
/// every later flush come from the heap and leave holes between the series' small,
/// long-lived allocations. With the threshold fixed, a block of 128 KiB or more gets its own
/// mapping and goes back to the kernel when freed, and the series' allocations stay packed
/// (`scripts/bench memory` measures the difference; BENCHMARKS.md has it).
public enum HeapPolicy {
    /// Blocks of at least this many bytes are mapped on their own (glibc's starting value, kept fixed).
    public static let mmapThreshold = 128 << 10

    /// Applies the policy to this process. Called once by the `stator` binary before any thread starts.
    public static func apply() {
        _ = CStatorSys_set_mmap_threshold(mmapThreshold)
    }
}

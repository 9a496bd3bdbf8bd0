// swift-tools-version:6.1
import PackageDescription

/// Swift 6 language mode plus the three upcoming features Hummingbird uses.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Stator",
    products: [
        .executable(name: "stator", targets: ["stator"]),
        .executable(name: "stator-load", targets: ["stator-load"]),
        .library(name: "StatorCore", targets: ["StatorCore"]),
    ],
    targets: [
        // Syscalls Swift's Glibc module cannot see (recvmmsg, sendmmsg, CMSG parsing), gzip via system
        // zlib, and the receive path's line scanner (vector compares). DWARF 4 debug info: valgrind 3.19
        // (`scripts/bench micro`) cannot read the DWARF 5 that clang writes for the scanner.
        .target(
            name: "CStatorSys", cSettings: [.unsafeFlags(["-gdwarf-4"])], linkerSettings: [.linkedLibrary("z")]),
        // The pipeline: Receive -> Parse -> Aggregate -> Flush -> Sinks, plus HTTP and Config.
        .target(name: "StatorCore", dependencies: ["CStatorSys"], swiftSettings: swiftSettings),
        .executableTarget(name: "stator", dependencies: ["StatorCore"], swiftSettings: swiftSettings),
        // Load generator for scripts/bench: paced sendmmsg of a reproducible statsd mix.
        .executableTarget(name: "stator-load", dependencies: ["CStatorSys", "StatorCore"], swiftSettings: swiftSettings),
        // Micro-benchmarks of the parser and the aggregation step (scripts/bench micro).
        .executableTarget(name: "stator-micro", dependencies: ["StatorCore"], swiftSettings: swiftSettings),
        .testTarget(name: "StatorCoreTests", dependencies: ["StatorCore", "CStatorSys"], swiftSettings: swiftSettings),
        // Starts the real `stator` binary on loopback; needs it built (scripts/test does).
        .testTarget(name: "StatorEndToEndTests", dependencies: ["StatorCore"], swiftSettings: swiftSettings),
    ]
)

// swift-tools-version:6.2
import PackageDescription

// libFuzzer targets for Cordon's parsers of untrusted input (docs/fuzzing.md; `make fuzz`).
//
// A package of its own, depending on the main one by path: every Swift module has to be built
// with `-sanitize=fuzzer,address` (coverage and ASan in the code under test, libFuzzer's main in
// the binary), which no target of the main package may carry, and `swift build` there must not
// build these. Each target is one executable, Fuzz<Name>, whose `main` hands one function to
// libFuzzer's driver (Support/FuzzSupport). Fuzz/fuzz.sh builds them in .build-fuzz.
func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: "Fuzz\(name)", dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: "cordon") },
                      path: name)
}

let package = Package(
    name: "cordon-fuzz",
    // Named, so the products below do not depend on the checkout's directory name.
    dependencies: [.package(name: "cordon", path: "..")],
    targets: [
        .target(name: "CFuzzer", path: "Support/CFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzer"], path: "Support/FuzzSupport"),
        fuzzTarget("Policy", ["CordonPolicy", "CordonDefaults"]),
        fuzzTarget("JSON", ["CordonJSON"]),
        fuzzTarget("Schema", ["CordonSchema", "CordonJSON"]),
        fuzzTarget("RPC", ["CordonRPC", "CordonJSON"]),
        fuzzTarget("Archive", ["CordonArchive"]),
        fuzzTarget("OSV", ["CordonVulnDB", "CordonScan"]),
        fuzzTarget("DNS", ["CordonEgress", "CordonPolicy"]),
        fuzzTarget("ClientHello", ["CordonEgress", "CordonPolicy"]),
        fuzzTarget("HTTP", ["CordonHTTP", "CordonPolicy"]),
        fuzzTarget("HTTPRequest", ["CordonHTTP"]),
        fuzzTarget("Models", ["CordonModels", "CordonJSON"]),
        fuzzTarget("Packaging", ["CordonPackaging", "CordonScan", "CordonJSON"]),
    ]
)

// Warnings are errors here too, as in the main package (whose targets carry the setting with them).
for target in package.targets {
    target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
}

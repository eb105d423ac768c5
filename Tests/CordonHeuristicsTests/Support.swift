@testable import CordonHeuristics

func pf(_ path: String, _ text: String) -> PackageFile { PackageFile(path: path, bytes: Array(text.utf8)) }

func pkg(_ files: [PackageFile], eco: PackageEcosystem = .pypi, name: String = "harmless-widget-lib", pureWheel: Bool = false) -> PackageUnderScan {
    PackageUnderScan(ecosystem: eco, name: name, files: files, pureWheel: pureWheel)
}

func scanFile(_ path: String, _ text: String, eco: PackageEcosystem = .pypi) -> [Finding] {
    Heuristics.scan(pkg([pf(path, text)], eco: eco))
}

func rules(_ fs: [Finding]) -> Set<String> { Set(fs.map(\.rule)) }

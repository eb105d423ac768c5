/// A compiled `pattern`: does the regular expression match anywhere in a string?
///
/// Why not a backtracking engine: without backreferences and lookaround (refused by
/// `PatternParser`) a pattern is a regular language, so an NFA simulation (Thompson's
/// construction run as a Pike VM, minus the captures nobody reads) answers in
/// O(text × program) steps. `(a+)+$` against "aaaa…b" costs a few steps per character instead
/// of 2^n; greedy and lazy quantifiers, and the order of alternatives, cannot change whether a
/// match exists. Bounded all the same: the program has at most `maxProgram` instructions
/// (counted repetition is unrolled, and the size is checked before unrolling) and a match may
/// take at most the step budget it is given, after which the answer is "too expensive", never
/// a guess.
struct Pattern: Sendable {
    enum Instruction: Sendable, Equatable {
        /// Consumes one scalar equal to this one.
        case scalar(UInt32)
        /// Consumes one scalar of `sets[index]`.
        case set(Int)
        /// Continues at both targets (the order is irrelevant: only existence is asked).
        case split(Int, Int)
        case jump(Int)
        case assertStart
        case assertEnd
        case wordBoundary
        case notWordBoundary
        case match
    }

    enum Outcome: Equatable {
        case match
        case noMatch
        /// The budget ran out before an answer.
        case tooExpensive
    }

    struct CompileError: Error, Equatable {
        var offset: Int?
        var message: String
    }

    let source: String
    let program: [Instruction]
    let sets: [ScalarSet]
    /// Steps one test against `sets[i]` costs: a class of many ranges is tested range by range.
    let setCosts: [Int]
    /// Every path starts with `^`: no thread need start after position 0.
    let anchoredAtStart: Bool

    /// The source for a message: cut to 80 scalars, controls escaped.
    var shown: String {
        let scalars = source.unicodeScalars
        let cut = scalars.count > 80 ? String(String.UnicodeScalarView(scalars.prefix(80))) + "…" : source
        return escapingControls(cut)
    }

    /// Parses and compiles `source`. `maxLength` counts scalars of the pattern.
    init(_ source: String, maxLength: Int, maxProgram: Int) throws(CompileError) {
        let length = source.unicodeScalars.count
        guard length <= maxLength else {
            throw CompileError(offset: nil, message: "longer than \(maxLength) characters (limit maxPatternLength)")
        }
        let tree: PatternNode
        do {
            tree = try PatternParser.parse(source)
        } catch {
            throw CompileError(offset: error.offset, message: error.message)
        }
        guard let size = Self.size(tree, cap: maxProgram), size + 1 <= maxProgram else {
            throw CompileError(offset: nil, message: "compiles to more than \(maxProgram) instructions (limit maxPatternProgram): use fewer or smaller {n,m} repetitions")
        }
        var builder = Builder()
        builder.emit(tree)
        builder.program.append(.match)
        self.source = source
        program = builder.program
        sets = builder.sets
        setCosts = builder.sets.map { 1 + $0.items.count / 4 }
        anchoredAtStart = Self.startsAnchored(tree)
    }

    /// The number of instructions `emit` writes for `node`, or nil once it passes `cap`.
    static func size(_ node: PatternNode, cap: Int) -> Int? {
        func bounded(_ n: Int) -> Int? { n <= cap ? n : nil }
        switch node {
        case .empty: return 0
        case .scalars, .inputStart, .inputEnd, .wordBoundary, .notWordBoundary: return 1
        case .sequence(let nodes):
            var total = 0
            for n in nodes {
                guard let s = size(n, cap: cap), let t = bounded(total + s) else { return nil }
                total = t
            }
            return total
        case .alternation(let nodes):
            // A split and a jump per alternative but the last.
            var total = 2 * (nodes.count - 1)
            for n in nodes {
                guard let s = size(n, cap: cap), let t = bounded(total + s) else { return nil }
                total = t
            }
            return total
        case .repetition(let body, let min, let max):
            guard let s = size(body, cap: cap) else { return nil }
            let (required, o1) = s.multipliedReportingOverflow(by: min)
            guard !o1 else { return nil }
            let optional: Int
            if let max {
                let (o, o2) = (s + 1).multipliedReportingOverflow(by: max - min)
                guard !o2 else { return nil }
                optional = o
            } else {
                optional = s + 2
            }
            return bounded(required + optional)
        }
    }

    static func startsAnchored(_ node: PatternNode) -> Bool {
        switch node {
        case .inputStart: return true
        case .sequence(let nodes): return nodes.first.map(startsAnchored) ?? false
        case .alternation(let nodes): return nodes.allSatisfy(startsAnchored)
        default: return false
        }
    }

    struct Builder {
        var program: [Instruction] = []
        var sets: [ScalarSet] = []

        mutating func emit(_ node: PatternNode) {
            switch node {
            case .empty: break
            case .scalars(let set):
                if !set.negated, set.items.count == 1, case .range(let lo, let hi) = set.items[0], lo == hi {
                    program.append(.scalar(lo))
                } else if let index = sets.firstIndex(of: set) {
                    program.append(.set(index))
                } else {
                    sets.append(set)
                    program.append(.set(sets.count - 1))
                }
            case .inputStart: program.append(.assertStart)
            case .inputEnd: program.append(.assertEnd)
            case .wordBoundary: program.append(.wordBoundary)
            case .notWordBoundary: program.append(.notWordBoundary)
            case .sequence(let nodes): for n in nodes { emit(n) }
            case .alternation(let nodes):
                var jumps: [Int] = []
                for (k, n) in nodes.enumerated() {
                    if k < nodes.count - 1 {
                        let split = program.count
                        program.append(.split(split + 1, -1))
                        emit(n)
                        jumps.append(program.count)
                        program.append(.jump(-1))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        emit(n)
                    }
                }
                for j in jumps { program[j] = .jump(program.count) }
            case .repetition(let body, let min, let max):
                for _ in 0..<min { emit(body) }
                if let max {
                    // (x(x(x)?)?)?: each optional copy may end the whole run.
                    var splits: [Int] = []
                    for _ in min..<max {
                        splits.append(program.count)
                        program.append(.split(program.count + 1, -1))
                        emit(body)
                    }
                    for s in splits { program[s] = .split(s + 1, program.count) }
                } else {
                    let loop = program.count
                    program.append(.split(loop + 1, -1))
                    emit(body)
                    program.append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
        }
    }

    /// Whether the pattern matches somewhere in `text`, taking at most `budget` steps (one per
    /// instruction a thread visits). `steps` is what it took.
    func firstMatch(in text: [Unicode.Scalar], budget: Int, steps: inout Int) -> Outcome {
        var run = Run(pattern: self, text: text, budget: budget)
        // Setting up costs a pass over the program.
        run.steps = program.count / 16
        let outcome = run.search()
        steps = run.steps
        return outcome
    }

    private struct Run {
        let pattern: Pattern
        let text: [Unicode.Scalar]
        let budget: Int
        var steps = 0
        /// The position (plus one) at which each instruction was last added: a thread list holds
        /// each instruction once.
        var seen: [Int]
        var pending: [Int] = []

        init(pattern: Pattern, text: [Unicode.Scalar], budget: Int) {
            self.pattern = pattern
            self.text = text
            self.budget = budget
            seen = Array(repeating: 0, count: pattern.program.count)
        }

        func isWordAt(_ position: Int) -> Bool {
            position >= 0 && position < text.count && ScalarSet.isWord(text[position].value)
        }

        /// Adds `pc` and everything reachable from it without consuming to `list`; true when
        /// that reaches `match`.
        mutating func add(_ pc: Int, at position: Int, to list: inout [Int]) -> Bool {
            let mark = position + 1
            pending.append(pc)
            while let pc = pending.popLast() {
                guard seen[pc] != mark else { continue }
                seen[pc] = mark
                steps += 1
                switch pattern.program[pc] {
                case .match:
                    pending.removeAll(keepingCapacity: true)
                    return true
                case .jump(let target): pending.append(target)
                case .split(let a, let b):
                    pending.append(b)
                    pending.append(a)
                case .assertStart: if position == 0 { pending.append(pc + 1) }
                case .assertEnd: if position == text.count { pending.append(pc + 1) }
                case .wordBoundary: if isWordAt(position - 1) != isWordAt(position) { pending.append(pc + 1) }
                case .notWordBoundary: if isWordAt(position - 1) == isWordAt(position) { pending.append(pc + 1) }
                case .scalar, .set: list.append(pc)
                }
            }
            return false
        }

        mutating func search() -> Outcome {
            var current: [Int] = []
            var next: [Int] = []
            current.reserveCapacity(pattern.program.count)
            next.reserveCapacity(pattern.program.count)
            if add(0, at: 0, to: &current) { return .match }
            for position in 0..<text.count {
                if steps > budget { return .tooExpensive }
                if current.isEmpty && pattern.anchoredAtStart { return .noMatch }
                let scalar = text[position]
                next.removeAll(keepingCapacity: true)
                for pc in current {
                    steps += 1
                    let consumes: Bool
                    switch pattern.program[pc] {
                    case .scalar(let v): consumes = scalar.value == v
                    case .set(let index):
                        steps += pattern.setCosts[index] - 1
                        consumes = pattern.sets[index].contains(scalar)
                    default: consumes = false
                    }
                    if consumes, add(pc + 1, at: position + 1, to: &next) { return .match }
                }
                if !pattern.anchoredAtStart, add(0, at: position + 1, to: &next) { return .match }
                swap(&current, &next)
            }
            return steps > budget ? .tooExpensive : .noMatch
        }
    }
}

import ArgumentParser
import CordonCommandLine
import CordonJSON
import CordonRPC
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// `cordon model …`: the model gateway through cordond (docs/models.md).
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Models through cordond's gateway (docs/models.md).",
        subcommands: [ModelListCommand.self, ModelAskCommand.self, ModelStatsCommand.self, ModelExplainCommand.self, ModelFeedbackCommand.self]
    )
}

/// `cordon model list`.
struct ModelListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the models cordond lets you call.")
    @OptionGroup var client: ClientOptions

    func run() throws {
        let answer = try client.call("model.list")
        if client.json { return client.printJSON(answer) }
        var rows = [["MODEL", "PROVIDER", "KIND", "TASK TYPES", "CONTEXT", "TOOLS", "PRICE IN/OUT per 1k", "FALLBACKS"]]
        for m in answer["models"]?.arrayValue ?? [] {
            func text(_ key: String) -> String { PrintableText.of(m[key]?.stringValue ?? "") }
            func list(_ key: String) -> String { (m[key]?.arrayValue ?? []).compactMap(\.stringValue).map(PrintableText.of).joined(separator: ",") }
            let available = m["available"] == .bool(false) ? " (unavailable)" : ""
            rows.append([text("name") + available, text("provider"), text("kind"), list("taskTypes"), "\(m["contextLength"]?.intValue ?? 0)",
                         m["tools"] == .bool(true) ? "yes" : "no", "\(m["priceInput"]?.doubleValue ?? 0)/\(m["priceOutput"]?.doubleValue ?? 0)",
                         list("fallbacks")])
        }
        if rows.count == 1 { say("no models"); return }
        printTable(rows)
        say("ask for auto (or auto:TYPE: \((answer["taskTypes"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "))) to let the selector choose")
    }
}

/// `cordon model ask [--model M] PROMPT`: one call; the answer on stdout (streamed as it comes).
struct ModelAskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask", abstract: "Ask a model through cordond; the answer on stdout.",
        discussion: "Streams the answer as it comes (--no-stream: wait for it whole). The completion id and the model that answered go to stderr (rate the answer with `cordon model feedback ID`). Reads the prompt from stdin when PROMPT is -. Exits 0 when a model answered, 2 when none did."
    )
    @OptionGroup var client: ClientOptions
    @Option(help: "A model's name, auto, or auto:TYPE (default auto).") var model = "auto"
    @Option(help: "A system message.") var system: String?
    @Option(name: .customLong("max-tokens"), help: "The longest answer, in tokens.") var maxTokens: Int?
    @Flag(name: .customLong("no-stream"), help: "Wait for the whole answer.") var noStream = false
    @Option(help: "Seconds to wait (default 600).") var timeout: Double?
    @Argument(help: "The prompt (- reads stdin).") var prompt: String

    func run() throws {
        var text = prompt
        if prompt == "-" {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            text = String(decoding: bytes, as: UTF8.self)
        }
        var messages: [JSON] = []
        if let system { messages.append(.object([("role", .string("system")), ("content", .string(system))])) }
        messages.append(.object([("role", .string("user")), ("content", .string(text))]))
        let stream = !noStream && !client.json
        var request: [(String, JSON)] = [("model", .string(model)), ("messages", .array(messages)), ("stream", .bool(stream))]
        if let maxTokens { request.append(("max_tokens", .int(Int64(maxTokens)))) }
        var params: [(String, JSON)] = [("request", .object(request))]
        if let timeout { params.append(("timeout", .double(timeout))) }
        var printed = false
        var lastByte: UInt8?
        let answer: JSON
        do {
            answer = try ClientOptions.connect(client.socketPath).call("model.chat", .object(params)) { method, params in
                guard method == "model.delta", let delta = params["chunk"]?["choices"]?.arrayValue?.first?["delta"],
                      let piece = delta["content"]?.stringValue, !piece.isEmpty else { return }
                FileDescriptorIO.writeAll(1, piece)
                printed = true
                lastByte = piece.utf8.last
            }
        } catch let error as RPCError {
            if printed { FileDescriptorIO.writeAll(1, "\n") }
            printError("cordon model ask: \(error.message)")
            throw ExitCode(error.code == RPCCode.unauthorized ? 77 : 2)
        } catch {
            printError("cordon model ask: \(error)")
            throw ExitCode(1)
        }
        if client.json { return client.printJSON(answer) }
        if !stream {
            let content = answer["completion"]?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue ?? ""
            FileDescriptorIO.writeAll(1, content)
            printed = !content.isEmpty
            lastByte = content.utf8.last
        }
        // A model's answer rarely ends its line: the shell's prompt would run on.
        if printed && lastByte != 10 { FileDescriptorIO.writeAll(1, "\n") }
        printError("\(answer["id"]?.stringValue ?? "?") \(answer["model"]?.stringValue ?? "?") (\(answer["reason"]?.stringValue ?? ""))")
    }
}

/// `cordon model stats`.
struct ModelStatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Each model's calls, failures, tokens, cost, breaker and worker.")
    @OptionGroup var client: ClientOptions

    func run() throws {
        let answer = try client.call("model.stats")
        if client.json { return client.printJSON(answer) }
        var rows = [["MODEL", "CALLS", "FAILED", "MEAN s", "TOKENS IN/OUT", "COST", "RATED +/-", "BREAKER", "WORKER"]]
        for m in answer["models"]?.arrayValue ?? [] {
            let worker = m["worker"]
            var workerText = "\(worker?["instances"]?.intValue ?? 0) running, \(worker?["starts"]?.intValue ?? 0) starts"
            if let failed = worker?["failed"]?.stringValue { workerText += ", failed: \(PrintableText.of(failed))" }
            rows.append([PrintableText.of(m["model"]?.stringValue ?? ""), "\(m["calls"]?.intValue ?? 0)", "\(m["failures"]?.intValue ?? 0)",
                         m["meanLatencySeconds"]?.doubleValue.map { String(format3($0)) } ?? "-",
                         "\(m["inputTokens"]?.intValue ?? 0)/\(m["outputTokens"]?.intValue ?? 0)", format3(m["cost"]?.doubleValue ?? 0),
                         "\(m["feedbackGood"]?.intValue ?? 0)/\(m["feedbackBad"]?.intValue ?? 0)", m["breaker"]?.stringValue ?? "?", workerText])
        }
        printTable(rows)
    }
}

/// A line on stdout, in order with `printTable`'s (which writes unbuffered).
private func say(_ text: String) { FileDescriptorIO.writeAll(1, text + "\n") }

func format3(_ d: Double) -> String {
    guard d.isFinite else { return "\(d)" }
    return "\((d * 1000).rounded() / 1000)"
}

/// `cordon model explain [MODEL]`: what the selector believes and would choose now.
struct ModelExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain", abstract: "Show what the selector believes of each model and what it would choose now.",
        discussion: "For auto (or auto:TYPE): each eligible model's posterior means (the chance a call answers, the chance its answer is right, median latency and a 90 % interval, expected cost), how much it has seen, its utility at the means, and the share of 2000 joint draws in which it came out best; changes the selector detected; the models left out and why. Makes no call."
    )
    @OptionGroup var client: ClientOptions
    @Argument(help: "auto, auto:TYPE or a model's name (default auto).") var model = "auto"

    func run() throws {
        let answer = try client.call("model.explain", .object([("model", .string(model))]))
        if client.json { return client.printJSON(answer) }
        let weights = answer["weights"]
        say("task type \(answer["taskType"]?.stringValue ?? "?"): reward = \(format3(weights?["success"]?.doubleValue ?? 0))·success + \(format3(weights?["latency"]?.doubleValue ?? 0))·latency (reference \(format3(answer["latencyReferenceSeconds"]?.doubleValue ?? 0)) s) + \(format3(weights?["cost"]?.doubleValue ?? 0))·cost (reference \(format3(answer["costReference"]?.doubleValue ?? 0))); discount \(answer["discount"]?.doubleValue ?? 0), change threshold \(answer["changeThreshold"]?.doubleValue ?? 0), exploration \(answer["exploration"]?.doubleValue ?? 0)")
        var rows = [["MODEL", "P(BEST)", "UTILITY", "ANSWERS", "RIGHT", "MEDIAN s (90 %)", "COST", "CALLS", "RATINGS", "BREAKER"]]
        for e in answer["eligible"]?.arrayValue ?? [] {
            func d(_ k: String) -> Double { e[k]?.doubleValue ?? 0 }
            rows.append([PrintableText.of(e["model"]?.stringValue ?? ""), e["probabilityBest"]?.doubleValue.map(format3) ?? "-", format3(d("meanUtility")),
                         format3(d("works")), format3(d("correct")),
                         "\(format3(d("latencyMedianSeconds"))) (\(format3(d("latencyLowSeconds")))-\(format3(d("latencyHighSeconds"))))",
                         format3(d("expectedCost")), format3(d("calls")), format3(d("feedback")), e["breaker"]?.stringValue ?? "?"])
        }
        printTable(rows)
        let changed = (answer["eligible"]?.arrayValue ?? []).compactMap { e -> String? in
            guard let n = e["changes"]?.intValue, n > 0, let ago = e["callsSinceChange"]?.intValue else { return nil }
            return "\(PrintableText.of(e["model"]?.stringValue ?? "")) \(n) (the last \(ago) calls ago)"
        }
        if !changed.isEmpty { say("changes detected (the model's record restarted there): " + changed.joined(separator: ", ")) }
        for i in answer["ineligible"]?.arrayValue ?? [] {
            say("not eligible: \(PrintableText.of(i["model"]?.stringValue ?? "")): \(PrintableText.of(i["reason"]?.stringValue ?? ""))")
        }
        if let choice = answer["choice"]?["model"]?.stringValue {
            say("one draw now chooses \(PrintableText.of(choice)) (\(answer["choice"]?["pick"]?.stringValue ?? ""))")
        } else {
            say("no model is eligible")
        }
    }
}

/// `cordon model feedback ID (--good | --bad | --score S)`.
struct ModelFeedbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback", abstract: "Rate an answer you got (once): it enters the selector's reward.",
        discussion: "ID is the completion id a call answered with (cordon model ask prints it on stderr; the endpoint's responses carry it as id)."
    )
    @OptionGroup var client: ClientOptions
    @Argument(help: "The completion id (chatcmpl-...).") var id: String
    @Flag(help: "The answer was right.") var good = false
    @Flag(help: "The answer was wrong.") var bad = false
    @Option(help: "How good, from 0 to 1.") var score: Double?

    func validate() throws {
        guard good || bad || score != nil else { throw ValidationError("give --good, --bad or --score S") }
        guard !(good && bad) else { throw ValidationError("--good and --bad contradict each other") }
        if let score, !(score.isFinite && (0...1).contains(score)) { throw ValidationError("--score \(score): a number from 0 to 1") }
    }

    func run() throws {
        var params: [(String, JSON)] = [("id", .string(id))]
        if good || bad { params.append(("success", .bool(good))) }
        if let score { params.append(("score", .double(score))) }
        let answer = try client.call("model.feedback", .object(params))
        if client.json { return client.printJSON(answer) }
        say("recorded for \(answer["model"]?.stringValue ?? "?") (task type \(answer["taskType"]?.stringValue ?? "?"))")
    }
}

import Synchronization

/// The daemon's counters, rendered in the Prometheus text exposition format (version 0.0.4).
public final class Metrics: Sendable {
    /// Spawn latency buckets (seconds): from leaving the queue to the workload's release.
    static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1]

    private struct State {
        var tasksByResult: [String: UInt64] = [:]
        var denialsByKind: [String: UInt64] = [:]
        var refusalsByMethod: [String: UInt64] = [:]
        var requestErrorsByCode: [Int64: UInt64] = [:]
        var spawnBuckets = [UInt64](repeating: 0, count: Metrics.buckets.count)
        var spawnCount: UInt64 = 0
        var spawnSum = 0.0
        var connections = 0
        var toolCalls: [String: [String: UInt64]] = [:]
        var toolLatency: [String: (buckets: [UInt64], count: UInt64, sum: Double)] = [:]
        var modelCalls: [String: [String: UInt64]] = [:]
        var modelLatency: [String: (buckets: [UInt64], count: UInt64, sum: Double)] = [:]
        var modelTokens: [String: (input: UInt64, output: UInt64)] = [:]
    }

    /// Tool call latency buckets (seconds), from tool.call's admission to its answer.
    static let toolBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60]

    private let state = Mutex(State())

    public init() {}

    func taskEnded(result: String) { state.withLock { $0.tasksByResult[result, default: 0] += 1 } }
    func denial(kind: String, count: Int = 1) { state.withLock { $0.denialsByKind[kind, default: 0] += UInt64(count) } }
    func refused(method: String) { state.withLock { $0.refusalsByMethod[method, default: 0] += 1 } }
    func requestError(code: Int64) { state.withLock { $0.requestErrorsByCode[code, default: 0] += 1 } }
    func connection(opened: Bool) { state.withLock { $0.connections += opened ? 1 : -1 } }
    var connections: Int { state.withLock { $0.connections } }

    func toolCall(tool: String, outcome: String, seconds: Double) {
        state.withLock { s in
            s.toolCalls[tool, default: [:]][outcome, default: 0] += 1
            var h = s.toolLatency[tool] ?? ([UInt64](repeating: 0, count: Metrics.toolBuckets.count), 0, 0)
            for (i, bound) in Metrics.toolBuckets.enumerated() where seconds <= bound { h.buckets[i] += 1 }
            h.count += 1
            h.sum += seconds
            s.toolLatency[tool] = h
        }
    }

    /// One model call, under the model that answered (or was tried last; "-" for none).
    func modelCall(model: String, outcome: String, seconds: Double, inputTokens: Int, outputTokens: Int) {
        state.withLock { s in
            s.modelCalls[model, default: [:]][outcome, default: 0] += 1
            var h = s.modelLatency[model] ?? ([UInt64](repeating: 0, count: Metrics.toolBuckets.count), 0, 0)
            for (i, bound) in Metrics.toolBuckets.enumerated() where seconds <= bound { h.buckets[i] += 1 }
            h.count += 1
            h.sum += seconds.isFinite ? seconds : 0
            s.modelLatency[model] = h
            var t = s.modelTokens[model] ?? (0, 0)
            t.input &+= UInt64(max(0, inputTokens))
            t.output &+= UInt64(max(0, outputTokens))
            s.modelTokens[model] = t
        }
    }

    func spawned(seconds: Double) {
        state.withLock { s in
            for (i, bound) in Metrics.buckets.enumerated() where seconds <= bound { s.spawnBuckets[i] += 1 }
            s.spawnCount += 1
            s.spawnSum += seconds
        }
    }

    /// The exposition text; `queued`/`running` are read from the scheduler at the same time.
    /// `tools`: each exposed tool's breaker state (0 closed, 1 open, 2 half-open), and each
    /// tool manifest's instances, failures and starts.
    func render(queued: Int, running: Int, parked: Int, healthy: Bool,
                breakers: [String: Int] = [:], instances: [String: (running: Int, starts: Int, failures: Int)] = [:],
                modelBreakers: [String: Int] = [:], modelServers: [String: (running: Int, starts: Int, failures: Int)] = [:]) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func label(_ value: String) -> String {
            value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
                .replacing("\n", with: "\\n")
        }
        /// `metric{key="NAME"} VALUE`, a line per name, names sorted.
        func byName(_ metric: String, _ key: String, _ values: [String: Int]) {
            for (name, v) in values.sorted(by: { $0.key < $1.key }) { out += "\(metric){\(key)=\"\(label(name))\"} \(v)\n" }
        }
        family("cordon_tasks_total", "counter", "Tasks that ended, by result (exited, timeout, memory-limit, cancelled, lost, ...).")
        for (result, n) in s.tasksByResult.sorted(by: { $0.key < $1.key }) { out += "cordon_tasks_total{result=\"\(label(result))\"} \(n)\n" }
        family("cordon_queue_depth", "gauge", "Tasks waiting for a slot.")
        out += "cordon_queue_depth \(queued)\n"
        family("cordon_tasks_running", "gauge", "Tasks running now.")
        out += "cordon_tasks_running \(running)\n"
        family("cordon_connections", "gauge", "Open client connections.")
        out += "cordon_connections \(s.connections)\n"
        family("cordon_parked_requests", "gauge", "Requests waiting for a task to end (task.wait, task.cancel, task.submit with wait), holding no thread.")
        out += "cordon_parked_requests \(parked)\n"
        family("cordon_spawn_seconds", "histogram", "From leaving the queue to the sandboxed workload's release.")
        for (i, bound) in Metrics.buckets.enumerated() { out += "cordon_spawn_seconds_bucket{le=\"\(bound)\"} \(s.spawnBuckets[i])\n" }
        out += "cordon_spawn_seconds_bucket{le=\"+Inf\"} \(s.spawnCount)\n"
        out += "cordon_spawn_seconds_sum \(s.spawnSum)\ncordon_spawn_seconds_count \(s.spawnCount)\n"
        family("cordon_denials_total", "counter", "Refusals inside sandboxes, by kind (syscall, egress).")
        for (kind, n) in s.denialsByKind.sorted(by: { $0.key < $1.key }) { out += "cordon_denials_total{kind=\"\(label(kind))\"} \(n)\n" }
        family("cordon_auth_refusals_total", "counter", "Requests refused by authorization, by method.")
        for (method, n) in s.refusalsByMethod.sorted(by: { $0.key < $1.key }) { out += "cordon_auth_refusals_total{method=\"\(label(method))\"} \(n)\n" }
        family("cordon_request_errors_total", "counter", "JSON-RPC error responses, by code.")
        for (code, n) in s.requestErrorsByCode.sorted(by: { $0.key < $1.key }) { out += "cordon_request_errors_total{code=\"\(code)\"} \(n)\n" }
        family("cordon_tool_calls_total", "counter", "Tool calls, by tool and outcome (ok, tool-error, invalid-arguments, timeout, …).")
        for (tool, outcomes) in s.toolCalls.sorted(by: { $0.key < $1.key }) {
            for (outcome, n) in outcomes.sorted(by: { $0.key < $1.key }) {
                out += "cordon_tool_calls_total{tool=\"\(label(tool))\",outcome=\"\(label(outcome))\"} \(n)\n"
            }
        }
        family("cordon_tool_call_seconds", "histogram", "From tool.call's admission to its answer, by tool.")
        for (tool, h) in s.toolLatency.sorted(by: { $0.key < $1.key }) {
            for (i, bound) in Metrics.toolBuckets.enumerated() { out += "cordon_tool_call_seconds_bucket{tool=\"\(label(tool))\",le=\"\(bound)\"} \(h.buckets[i])\n" }
            out += "cordon_tool_call_seconds_bucket{tool=\"\(label(tool))\",le=\"+Inf\"} \(h.count)\n"
            out += "cordon_tool_call_seconds_sum{tool=\"\(label(tool))\"} \(h.sum)\ncordon_tool_call_seconds_count{tool=\"\(label(tool))\"} \(h.count)\n"
        }
        family("cordon_tool_breaker_state", "gauge", "Each called tool's circuit breaker: 0 closed, 1 open, 2 half-open.")
        byName("cordon_tool_breaker_state", "tool", breakers)
        family("cordon_tool_instances", "gauge", "Running instances of each MCP tool server, all users together.")
        byName("cordon_tool_instances", "tool", instances.mapValues(\.running))
        family("cordon_tool_instance_starts_total", "counter", "Instances started, by tool server.")
        byName("cordon_tool_instance_starts_total", "tool", instances.mapValues(\.starts))
        family("cordon_tool_instance_failures_total", "counter", "Instances that died, failed to start or to answer a health check, or hung a call, by tool server.")
        byName("cordon_tool_instance_failures_total", "tool", instances.mapValues(\.failures))
        family("cordon_model_calls_total", "counter", "Model calls, by the model that answered or was tried last, and outcome.")
        for (model, outcomes) in s.modelCalls.sorted(by: { $0.key < $1.key }) {
            for (outcome, n) in outcomes.sorted(by: { $0.key < $1.key }) {
                out += "cordon_model_calls_total{model=\"\(label(model))\",outcome=\"\(label(outcome))\"} \(n)\n"
            }
        }
        family("cordon_model_call_seconds", "histogram", "From a model call's admission to its answer's end, by model.")
        for (model, h) in s.modelLatency.sorted(by: { $0.key < $1.key }) {
            for (i, bound) in Metrics.toolBuckets.enumerated() { out += "cordon_model_call_seconds_bucket{model=\"\(label(model))\",le=\"\(bound)\"} \(h.buckets[i])\n" }
            out += "cordon_model_call_seconds_bucket{model=\"\(label(model))\",le=\"+Inf\"} \(h.count)\n"
            out += "cordon_model_call_seconds_sum{model=\"\(label(model))\"} \(h.sum)\ncordon_model_call_seconds_count{model=\"\(label(model))\"} \(h.count)\n"
        }
        family("cordon_model_tokens_total", "counter", "Tokens billed, by model and direction (input, output).")
        for (model, t) in s.modelTokens.sorted(by: { $0.key < $1.key }) {
            out += "cordon_model_tokens_total{model=\"\(label(model))\",direction=\"input\"} \(t.input)\n"
            out += "cordon_model_tokens_total{model=\"\(label(model))\",direction=\"output\"} \(t.output)\n"
        }
        family("cordon_model_breaker_state", "gauge", "Each model's circuit breaker: 0 closed, 1 open, 2 half-open.")
        byName("cordon_model_breaker_state", "model", modelBreakers)
        family("cordon_model_server_loaded", "gauge", "1 while a local model server (a kind = \"local\" provider) is loaded, by provider.")
        byName("cordon_model_server_loaded", "provider", modelServers.mapValues(\.running))
        family("cordon_model_server_starts_total", "counter", "Local model server starts, by provider.")
        byName("cordon_model_server_starts_total", "provider", modelServers.mapValues(\.starts))
        family("cordon_model_server_failures_total", "counter", "Local model servers that died, failed to become ready or a health check, or hung a call, by provider.")
        byName("cordon_model_server_failures_total", "provider", modelServers.mapValues(\.failures))
        family("cordon_healthy", "gauge", "1 when system.health reports ok, 0 when degraded.")
        out += "cordon_healthy \(healthy ? 1 : 0)\n"
        return out
    }
}

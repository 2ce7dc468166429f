// A dry run of a rendered declarative pipeline, without Jenkins.
//
//   groovy -cp jenkins/harness jenkins/harness/harness.groovy compile FILE...
//       parses (compiles) each file as Jenkins would; prints {"FILE": null | "error"} as JSON.
//   groovy -cp jenkins/harness jenkins/harness/harness.groovy run SCENARIOS.json
//       evaluates each scenario's Jenkinsfile with the Jenkins steps replaced by recording
//       stubs and prints, per scenario, the events in order: stages run or skipped (and why),
//       sh scripts with the environment they would see, credentials bindings, junit and
//       archiveArtifacts patterns, input prompts and post conditions.
//
// A scenario: {"name", "file", "library" (vars file that provides microdeployPipeline),
// "env" (BRANCH_NAME, TAG_NAME, ...), "credentials" (ids that exist), "fail_on" (an sh
// script containing this text fails), "stdout" (what `sh returnStdout` returns)}.
// The parallel step runs its branches in turn; their events carry the branch's name.
// Groovy 2.4 (Debian 12): no lambdas, no var.

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class StepFailure extends RuntimeException {
    StepFailure(String message) { super(message) }
}

class Recorder {
    Map env
    List events = []
    String stage = null
    String branch = null

    void record(Map event) {
        Map copy = [stage: stage]
        if (branch != null) { copy.branch = branch }
        event.each { k, v -> copy[k.toString()] = Recorder.plain(v) }
        events << copy
    }

    static Object plain(Object value) {
        if (value instanceof Map) {
            Map out = new TreeMap()
            value.each { k, v -> out[k.toString()] = plain(v) }
            return out
        }
        if (value instanceof Collection) {
            return value.collect { plain(it) }
        }
        if (value instanceof CharSequence) {
            return value.toString()
        }
        return value
    }
}

class Spec {
    static Object run(Closure body, Object delegate) {
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.delegate = delegate
        return body.call()
    }
}

class PipelineSpec {
    Closure hAgent, hOptions, hEnvironment, hStages, hPost
    void agent(Closure c) { hAgent = c }
    void options(Closure c) { hOptions = c }
    void environment(Closure c) { hEnvironment = c }
    void stages(Closure c) { hStages = c }
    void post(Closure c) { hPost = c }
}

class AgentSpec {
    String hLabel
    void label(String value) { hLabel = value }
}

class EnvironmentSpec {
    Map hValues = [:]
    void setProperty(String name, Object value) { hValues[name] = value }
}

class StagesSpec {
    List hStages = []
    void stage(String name, Closure body) { hStages << [name, body] }
}

class StageSpec {
    Closure hWhen, hInput, hSteps, hPost
    void when(Closure c) { hWhen = c }
    void input(Closure c) { hInput = c }
    void steps(Closure c) { hSteps = c }
    void post(Closure c) { hPost = c }
}

class InputSpec {
    Map hValues = [:]
    void message(String value) { hValues.message = value }
    void ok(String value) { hValues.ok = value }
    void submitter(String value) { hValues.submitter = value }
    void id(String value) { hValues.id = value }
}

class PostSpec {
    Map hConditions = [:]
    void always(Closure c) { hConditions.always = c }
    void success(Closure c) { hConditions.success = c }
    void failure(Closure c) { hConditions.failure = c }
    void unsuccessful(Closure c) { hConditions.unsuccessful = c }
    void cleanup(Closure c) { hConditions.cleanup = c }
}

// `when` conditions, as Declarative evaluates them; `branch` is an Ant-style glob on BRANCH_NAME.
class WhenSpec {
    Map hEnv
    List hResults = []
    boolean hBeforeInput = false

    boolean evaluate(Closure body) {
        Spec.run(body, this)
        return hResults.every { it }
    }
    WhenSpec child() { new WhenSpec(hEnv: hEnv) }
    void branch(String pattern) {
        String name = hEnv.BRANCH_NAME
        String regex = pattern.replace('.', '\\.').replace('**', '\u0000').replace('*', '[^/]*').replace('\u0000', '.*').replace('?', '.')
        hResults << (name != null && name ==~ regex)
    }
    void buildingTag() { hResults << (hEnv.TAG_NAME != null) }
    void expression(Closure body) { hResults << (body.call() as boolean) }
    void anyOf(Closure body) { WhenSpec w = child(); Spec.run(body, w); hResults << w.hResults.any { it } }
    void allOf(Closure body) { WhenSpec w = child(); Spec.run(body, w); hResults << w.hResults.every { it } }
    void not(Closure body) { WhenSpec w = child(); Spec.run(body, w); hResults << !w.hResults.every { it } }
    void beforeInput(boolean value) { hBeforeInput = value }
    void beforeAgent(boolean value) { }
}

Map runScenario(Map scenario) {
    Map env = new LinkedHashMap()
    (scenario.env ?: [:]).each { k, v -> env[k] = v }
    Recorder rec = new Recorder(env: env)
    Set credentials = (scenario.credentials ?: []) as Set
    Binding binding = new Binding()
    GroovyShell shell = new GroovyShell(this.class.classLoader, binding)
    String result = 'SUCCESS'

    binding.setVariable('env', env)
    binding.setVariable('_', null)
    binding.setVariable('sh', { arg ->
        Map m = arg instanceof Map ? arg : [script: arg]
        String script = m.script.toString()
        rec.record([type: 'sh', script: script, returnStdout: m.returnStdout ? true : false, env: new TreeMap(env)])
        if (scenario.fail_on && script.contains(scenario.fail_on)) {
            throw new StepFailure("script returned exit code 1: ${scenario.fail_on}")
        }
        return m.returnStdout ? (scenario.stdout ?: '1.0.0-1') + '\n' : null
    })
    binding.setVariable('script', { Closure body -> body.call() })
    binding.setVariable('withEnv', { List pairs, Closure body ->
        Map saved = new LinkedHashMap(env)
        pairs.each { String pair -> int eq = pair.indexOf('='); env[pair.substring(0, eq)] = pair.substring(eq + 1) }
        try { body.call() } finally { env.clear(); env.putAll(saved) }
    })
    // The parallel step: the branches run one after the other here, each recorded under its name
    // (events inside carry `branch`); as in Jenkins without failFast, every branch runs and the
    // step fails after all of them when any failed.
    binding.setVariable('parallel', { Map branches ->
        List names = branches.keySet().findAll { it != 'failFast' }.collect { it.toString() }
        rec.record([type: 'parallel', branches: names])
        List failures = []
        String outer = rec.branch
        for (String name in names) {
            rec.branch = name
            rec.record([type: 'branch', name: name])
            try {
                branches[name].call()
            } catch (StepFailure e) {
                failures << name
                rec.record([type: 'failure', message: e.message])
            } finally {
                rec.branch = outer
            }
        }
        if (failures) {
            throw new StepFailure("parallel branch(es) failed: ${failures.join(', ')}")
        }
    })
    binding.setVariable('echo', { msg -> rec.record([type: 'echo', message: msg]) })
    binding.setVariable('error', { msg -> rec.record([type: 'error', message: msg]); throw new StepFailure(msg.toString()) })
    binding.setVariable('junit', { arg -> rec.record([type: 'junit', testResults: arg instanceof Map ? arg.testResults : arg]) })
    binding.setVariable('archiveArtifacts', { arg ->
        rec.record([type: 'archiveArtifacts'] + (arg instanceof Map ? arg : [artifacts: arg]))
    })
    binding.setVariable('mail', { Map m -> rec.record([type: 'mail'] + m) })
    binding.setVariable('deleteDir', { -> rec.record([type: 'deleteDir']) })
    binding.setVariable('timestamps', { -> rec.record([type: 'option', option: 'timestamps']) })
    binding.setVariable('disableConcurrentBuilds', { -> rec.record([type: 'option', option: 'disableConcurrentBuilds']) })
    binding.setVariable('logRotator', { Map m -> m })
    binding.setVariable('buildDiscarder', { Map m -> rec.record([type: 'option', option: 'buildDiscarder'] + m) })
    binding.setVariable('timeout', { Map m, Closure body = null ->
        rec.record([type: 'option', option: 'timeout'] + m)
        if (body != null) { body.call() }
    })
    binding.setVariable('file', { Map m -> [kind: 'file'] + m })
    binding.setVariable('string', { Map m -> [kind: 'string'] + m })
    binding.setVariable('sshUserPrivateKey', { Map m -> [kind: 'sshUserPrivateKey'] + m })
    binding.setVariable('withCredentials', { List bindings, Closure body ->
        rec.record([type: 'withCredentials', bindings: bindings])
        Map saved = new LinkedHashMap(env)
        bindings.each { b ->
            if (!credentials.contains(b.credentialsId)) {
                throw new StepFailure("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            b.each { k, v ->
                if (k == 'variable' || k.toString().endsWith('Variable')) { env[v] = "SECRET-${b.credentialsId}-${k}".toString() }
            }
        }
        try { body.call() } finally { env.clear(); env.putAll(saved) }
    })

    Closure runPost = { Closure body, boolean failed ->
        PostSpec post = new PostSpec()
        Spec.run(body, post)
        List order = ['always', failed ? 'failure' : 'success', failed ? 'unsuccessful' : null, 'cleanup']
        for (String condition in order) {
            if (condition != null && post.hConditions[condition] != null) {
                rec.record([type: 'post', condition: condition])
                post.hConditions[condition].call()
            }
        }
    }

    binding.setVariable('pipeline', { Closure body ->
        PipelineSpec spec = new PipelineSpec()
        Spec.run(body, spec)
        if (spec.hAgent) {
            AgentSpec agent = new AgentSpec()
            Spec.run(spec.hAgent, agent)
            rec.record([type: 'agent', label: agent.hLabel])
        }
        if (spec.hOptions) { spec.hOptions.call() }
        if (spec.hEnvironment) {
            EnvironmentSpec environment = new EnvironmentSpec()
            Spec.run(spec.hEnvironment, environment)
            environment.hValues.each { k, v -> env[k] = v.toString() }
            rec.record([type: 'environment', values: environment.hValues])
        }
        StagesSpec stages = new StagesSpec()
        Spec.run(spec.hStages, stages)
        boolean failed = false
        for (List entry in stages.hStages) {
            String name = entry[0]
            rec.stage = name
            if (failed) {
                rec.record([type: 'stage', name: name, status: 'skipped (earlier failure)'])
                continue
            }
            StageSpec stage = new StageSpec()
            Spec.run(entry[1], stage)
            if (stage.hWhen != null && !new WhenSpec(hEnv: env).evaluate(stage.hWhen)) {
                rec.record([type: 'stage', name: name, status: 'skipped (when)'])
                continue
            }
            rec.record([type: 'stage', name: name, status: 'run'])
            if (stage.hInput != null) {
                InputSpec input = new InputSpec()
                Spec.run(stage.hInput, input)
                rec.record([type: 'input'] + input.hValues)
            }
            boolean stageFailed = false
            try {
                stage.hSteps.call()
            } catch (StepFailure e) {
                stageFailed = true
                rec.record([type: 'failure', message: e.message])
            }
            if (stage.hPost != null) { runPost(stage.hPost, stageFailed) }
            failed = failed || stageFailed
        }
        rec.stage = null
        if (spec.hPost) { runPost(spec.hPost, failed) }
        result = failed ? 'FAILURE' : 'SUCCESS'
    })

    if (scenario.library) {
        Script library = shell.parse(new File(scenario.library.toString()).getText('UTF-8'), 'microdeployPipeline')
        binding.setVariable('microdeployPipeline', { Object[] arguments -> library.invokeMethod('call', arguments) })
    }
    try {
        shell.evaluate(new File(scenario.file.toString()).getText('UTF-8'), 'Jenkinsfile')
    } catch (StepFailure e) {
        result = 'ERROR'
        rec.record([type: 'failure', message: e.message])
    }
    return [name: scenario.name, result: result, events: rec.events]
}

Map compileFiles(List files) {
    Map errors = new TreeMap()
    for (String path in files) {
        try {
            // Compile only: parse() builds the class without running it.
            new GroovyShell(this.class.classLoader).parse(new File(path).getText('UTF-8'), 'Jenkinsfile')
            errors[path] = null
        } catch (Exception e) {
            errors[path] = e.message
        }
    }
    return errors
}

if (args.length < 2 || !(args[0] in ['compile', 'run'])) {
    System.err.println('usage: harness.groovy compile FILE... | run SCENARIOS.json')
    System.exit(2)
}
if (args[0] == 'compile') {
    println JsonOutput.toJson(compileFiles(args[1..-1] as List))
} else {
    List scenarios = new JsonSlurper().parse(new File(args[1]), 'UTF-8') as List
    println JsonOutput.toJson(scenarios.collect { runScenario(it as Map) })
}

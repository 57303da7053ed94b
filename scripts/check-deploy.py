#!/usr/bin/env python3
"""Static checks of the deployment files (deploy/, Dockerfile), no Docker or
cluster needed:

    scripts/check-deploy.py            (from any directory)

- every YAML file under deploy/ parses (all documents), and every JSON file;
- Dockerfile: COPY sources exist and are not excluded by .dockerignore, and
  the --config path of CMD is a file the image gets;
- deploy/docker-compose.yml: everything it builds from or mounts exists
  (paths relative to deploy/), named volumes are declared, SALESPULSE_*
  variables name real configuration keys and the brokers are a compose
  service; the Prometheus it runs scrapes salespulse:9464, alerts to
  alertmanager:9093 and its rule_files match rule files; Grafana's
  datasources point at compose services and its dashboard provider at the
  mounted dashboards;
- Grafana dashboards: uids unique, datasource uids provisioned;
- deploy/k8s/bridge (the webhook bridge): its own pod labels, `bridge`
  command, port `http` = bridge.listen, probes, secrets and lookup files
  mounted where its salespulse.toml reads them, grace period above
  bridge.shutdown_grace, Service/PodMonitor/PDB selecting only its pods;
- deploy/k8s: kustomization resources exist; the Deployment's configMap and
  --config path match the ConfigMap; Service, PodMonitor, PDB and Deployment
  selectors match the pod labels, ServiceMonitor's the Service's labels, and
  their ports name real ports; probes hit /healthz and /readyz; the
  ConfigMap's salespulse.toml is valid TOML whose sections and keys exist in
  config/salespulse.toml, and its http.listen port is the container port.

Prints one line per check and closes with `N passed, M failed`; exits 1 when
a check failed. Needs Python 3.11+ (tomllib) and PyYAML.
"""

import fnmatch
import glob
import json
import os
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlparse

try:
    import tomllib
    import yaml
except ImportError as e:  # pragma: no cover - environment problem
    sys.exit(f"check-deploy: {e}: needs Python 3.11+ (tomllib) and PyYAML (python3 -m pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"


def rel(p):
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, problems=None):
        """Records one check; `problems` is falsy (pass), a string or a list of strings."""
        if isinstance(problems, str):
            problems = [problems]
        if problems:
            self.failed += 1
            print(f"FAIL  {name}: {'; '.join(problems)}")
        else:
            self.passed += 1
            print(f"ok    {name}")
        return not problems


R = Report()
YAML = {}  # path -> list of documents (only files that parsed)


# ---------------------------------------------------------------- config/salespulse.toml

def shipped_config():
    with open(ROOT / "config" / "salespulse.toml", "rb") as f:
        return tomllib.load(f)


def benchmark_kpis():
    """The ratio KPIs a benchmark key may name (BENCHMARK_KPIS in src/config.rs)."""
    try:
        src = (ROOT / "src" / "config.rs").read_text()
    except OSError:
        return None
    m = re.search(r"BENCHMARK_KPIS:\s*&\[&str\]\s*=\s*&\[(.*?)\];", src, re.S)
    return set(re.findall(r'"([a-z0-9_]+)"', m.group(1))) if m else None


SHIPPED = shipped_config()
KPIS = benchmark_kpis()


def benchmark_key_ok(key):
    m = re.fullmatch(r"([a-z0-9_]+)_(min|target|max)", key)
    return bool(m) and (KPIS is None or m.group(1) in KPIS)


def config_key_problem(path):
    """Why a configuration key path (['kafka', 'brokers']) does not exist, or None."""
    if not path or path[0] not in SHIPPED or not isinstance(SHIPPED[path[0]], dict):
        return f"no section [{path[0] if path else ''}] in config/salespulse.toml"
    section, rest = path[0], path[1:]
    if not rest:
        return "names a section, not a key"
    if section == "kafka" and rest[0] == "properties":
        # the whole table ({"sasl.username"="..."} from the environment) or one property
        return None if len(rest) <= 2 else "kafka.properties takes librdkafka property names"
    if section == "benchmarks":
        if rest[0] == "teams":
            return None if len(rest) == 3 and benchmark_key_ok(rest[2]) else f"not benchmarks.teams.<team>.<kpi>_<min|target|max>: {'.'.join(path)}"
        return None if len(rest) == 1 and benchmark_key_ok(rest[0]) else f"unknown benchmark {'.'.join(path)}"
    if section == "bridge" and rest[0] in ("lookups", "custom"):
        # [bridge.lookups.<name>] file/rows, [bridge.custom.<name>] mapping
        keys = {"lookups": ("file", "rows"), "custom": ("mapping",)}[rest[0]]
        if len(rest) == 3 and rest[2] in keys or (rest[0] == "lookups" and len(rest) >= 4 and rest[2] == "rows"):
            return None
        return f"not bridge.{rest[0]}.<name>.<{'|'.join(keys)}>: {'.'.join(path)}"
    if section == "bridge" and isinstance(SHIPPED["bridge"].get(rest[0]), dict):
        # [bridge.pipedrive], [bridge.close], [bridge.hubspot]
        if len(rest) == 2 and rest[1] in SHIPPED["bridge"][rest[0]]:
            return None
        return f"no key {'.'.join(path)} in config/salespulse.toml"
    if len(rest) != 1 or rest[0] not in SHIPPED[section]:
        return f"no key {'.'.join(path)} in config/salespulse.toml"
    return None


def flat_keys(prefix, table):
    """Key paths of a TOML table, down to its scalars (or to the tables of rows)."""
    out = []
    for k, v in table.items():
        if isinstance(v, dict) and not (len(prefix) >= 3 and prefix[-1] == "rows"):
            out += flat_keys(prefix + [k], v)
        else:
            out.append(prefix + [k])
    return out


def env_key_problem(name):
    """SALESPULSE_<SECTION>__<KEY> → the key's problem, or None."""
    if name == "SALESPULSE_CONFIG":  # the --config flag, not a key
        return None
    path = name[len("SALESPULSE_"):].lower().split("__")
    return config_key_problem(path)


def toml_problems(doc):
    """Sections and keys of a salespulse.toml that the shipped file does not have."""
    problems = []
    for section, table in doc.items():
        if section not in SHIPPED or not isinstance(SHIPPED[section], dict):
            problems.append(f"unknown section [{section}]")
            continue
        if not isinstance(table, dict):
            problems.append(f"{section} is not a table")
            continue
        for key, value in table.items():
            if section == "kafka" and key == "properties":
                if not isinstance(value, dict) or any(isinstance(v, dict) for v in value.values()):
                    problems.append("[kafka.properties] must map property names to values")
                continue
            if section == "benchmarks" and key == "teams":
                if not isinstance(value, dict):
                    problems.append("benchmarks.teams must hold [benchmarks.teams.<team>] tables")
                    continue
                for team, t in value.items():
                    if not isinstance(t, dict):
                        problems.append(f"benchmarks.teams.{team} is not a table")
                        continue
                    problems += [p for k in t if (p := config_key_problem(["benchmarks", "teams", team, k]))]
                continue
            if section == "bridge" and isinstance(value, dict):
                problems += [p for path in flat_keys(["bridge", key], value) if (p := config_key_problem(path))]
                continue
            if isinstance(value, dict):
                problems.append(f"unknown section [{section}.{key}]")
                continue
            p = config_key_problem([section, key])
            if p:
                problems.append(p)
    return problems


# ---------------------------------------------------------------- syntax

def check_syntax():
    if not DEPLOY.is_dir():
        R.check("deploy/ exists", "no deploy/ directory")
        return
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    for p in files:
        if p.suffix in (".yml", ".yaml"):
            try:
                with open(p) as f:
                    docs = list(yaml.safe_load_all(f))
                YAML[p.resolve()] = docs
                n = len([d for d in docs if d is not None])
                R.check(f"yaml: {rel(p)} parses ({n} document{'s' if n != 1 else ''})")
            except yaml.YAMLError as e:
                R.check(f"yaml: {rel(p)} parses", " ".join(str(e).split()))
        elif p.suffix == ".json":
            try:
                with open(p) as f:
                    json.load(f)
                R.check(f"json: {rel(p)} parses")
            except (ValueError, UnicodeDecodeError) as e:
                R.check(f"json: {rel(p)} parses", str(e))


def docs_of(path):
    return [d for d in YAML.get(Path(path).resolve(), []) if d is not None]


# ---------------------------------------------------------------- Dockerfile

def dockerignore_patterns():
    p = ROOT / ".dockerignore"
    if not p.exists():
        return []
    pats = []
    for line in p.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            neg = line.startswith("!")
            pats.append((neg, line.lstrip("!").strip("/")))
    return pats


def ignored(path, pats):
    """Whether .dockerignore excludes `path` (relative, '/'-separated) or a parent of it."""
    parts = path.strip("/").split("/")
    result = False
    for neg, pat in pats:
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:i]), pat):
                result = not neg
                break
    return result


def dockerfile_instructions(text):
    """(instruction, args) pairs with line continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, args = cur.strip().partition(" ")
        out.append((word.upper(), args.strip()))
        cur = ""
    return out


def exec_form(args):
    args = args.strip()
    if args.startswith("["):
        try:
            return json.loads(args)
        except ValueError:
            pass
    return shlex.split(args)


def check_dockerfile():
    path = ROOT / "Dockerfile"
    if not path.exists():
        R.check("Dockerfile exists", "no Dockerfile at the repository root")
        return
    pats = dockerignore_patterns()
    dests, cmd = [], None
    for word, args in dockerfile_instructions(path.read_text()):
        if word in ("COPY", "ADD"):
            words = exec_form(args)
            flags = [w for w in words if w.startswith("--")]
            rest = [w for w in words if not w.startswith("--")]
            if len(rest) < 2:
                R.check(f"Dockerfile: {word} {args}", "needs a source and a destination")
                continue
            srcs, dest = rest[:-1], rest[-1]
            if any(f.startswith("--from") for f in flags):
                dests.append((dest, srcs))
                continue
            for s in srcs:
                matches = glob.glob(str(ROOT / s))
                problems = []
                if not matches:
                    problems.append(f"{s} does not exist in the build context (the repository root)")
                elif ignored(s, pats):
                    problems.append(f"{s} is excluded by .dockerignore")
                R.check(f"Dockerfile: COPY source {s} exists", problems)
            dests.append((dest, srcs))
        elif word == "CMD":
            cmd = exec_form(args)
    if cmd and "--config" in cmd:
        i = cmd.index("--config")
        cfg = cmd[i + 1] if i + 1 < len(cmd) else ""
        ok = any(d == cfg or (d.endswith("/") and cfg.startswith(d)) for d, _ in dests)
        R.check(f"Dockerfile: CMD --config {cfg} is copied into the image", None if ok else f"no COPY puts a file at {cfg}")


# ---------------------------------------------------------------- docker-compose.yml

def split_volume(v):
    """Short syntax SRC:DST[:MODE] → (src, dst); long syntax dict → (source, target, type)."""
    if isinstance(v, dict):
        return v.get("source"), v.get("target"), v.get("type", "volume")
    parts = str(v).split(":")
    if len(parts) == 1:
        return None, parts[0], "volume"  # anonymous volume
    src, dst = parts[0], parts[1]
    kind = "bind" if src.startswith((".", "/", "~")) else "volume"
    return src, dst, kind


def host_path(mounts, container_path):
    """The host path behind `container_path` given [(host, container)] bind mounts."""
    best = None
    for host, cont in mounts:
        c = cont.rstrip("/")
        if container_path == c or container_path.startswith(c + "/"):
            if best is None or len(c) > len(best[1]):
                best = (host, c)
    if best is None:
        return None
    return Path(str(best[0]) + container_path[len(best[1]):])


def target_hosts(targets):
    return [t.rsplit(":", 1)[0] for t in targets]


def check_compose():
    if not COMPOSE.exists():
        R.check("compose: deploy/docker-compose.yml exists", "missing")
        return
    docs = docs_of(COMPOSE)
    if not docs or not isinstance(docs[0], dict) or "services" not in docs[0]:
        R.check("compose: deploy/docker-compose.yml has services", "no services: mapping")
        return
    compose = docs[0]
    services = compose["services"]
    names = set(services)
    volumes_declared = set((compose.get("volumes") or {}).keys())
    binds = {}  # service -> [(host Path, container path)]
    for name, svc in services.items():
        svc = svc or {}
        build = svc.get("build")
        if build is not None:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            ctx_path = (DEPLOY / ctx).resolve()
            R.check(f"compose: {name} builds from {ctx} (a directory)", None if ctx_path.is_dir() else f"{rel(ctx_path)} is not a directory")
            dockerfile = (build.get("dockerfile") if isinstance(build, dict) else None) or "Dockerfile"
            df = (ctx_path / dockerfile).resolve()
            R.check(f"compose: {name} dockerfile {rel(df)} exists", None if df.is_file() else "missing")
        binds[name] = []
        for v in svc.get("volumes") or []:
            src, dst, kind = split_volume(v)
            if kind == "bind":
                hp = (DEPLOY / os.path.expanduser(src)).resolve()
                binds[name].append((hp, dst))
                R.check(f"compose: {name} mounts {src} (at {dst})", None if hp.exists() else f"{rel(hp)} does not exist")
            elif src is not None:
                R.check(f"compose: {name} volume {src} is declared", None if src in volumes_declared else f"no top-level volumes: {src}")
        for ef in ([svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file") or []):
            p = (DEPLOY / (ef if isinstance(ef, str) else ef.get("path", ""))).resolve()
            R.check(f"compose: {name} env_file {rel(p)} exists", None if p.is_file() else "missing")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        for k, val in env.items():
            if k.startswith("SALESPULSE_"):
                R.check(f"compose: {name} {k} is a configuration key", env_key_problem(k))
        brokers = env.get("SALESPULSE_KAFKA__BROKERS")
        if brokers:
            hosts = target_hosts(str(brokers).split(","))
            bad = [h for h in hosts if h not in names]
            R.check(f"compose: {name} brokers {brokers} are compose services", f"not a service: {', '.join(bad)}" if bad else None)
        for dep in (svc.get("depends_on") or []):
            if dep not in names:
                R.check(f"compose: {name} depends on {dep}", "no such service")
    for kind in ("configs", "secrets"):
        for cname, c in (compose.get(kind) or {}).items():
            if isinstance(c, dict) and c.get("file"):
                p = (DEPLOY / c["file"]).resolve()
                R.check(f"compose: {kind[:-1]} {cname} file {c['file']} exists", None if p.is_file() else "missing")
    if "salespulse" not in services:
        R.check("compose: a salespulse service", "missing")
    check_compose_prometheus(services, binds, names)
    check_compose_grafana(services, binds, names)


def find_service(services, image_word):
    for name, svc in services.items():
        if image_word in str((svc or {}).get("image", "")) or name == image_word:
            return name
    return None


def check_compose_prometheus(services, binds, names):
    prom = find_service(services, "prometheus")
    if prom is None:
        R.check("compose: a prometheus service", "missing")
        return
    cfg_in_container = "/etc/prometheus/prometheus.yml"
    for a in (services[prom].get("command") or []):
        if str(a).startswith("--config.file="):
            cfg_in_container = str(a).split("=", 1)[1]
    cfg = host_path(binds[prom], cfg_in_container)
    if cfg is None or not cfg.is_file():
        R.check(f"compose: prometheus config {cfg_in_container} is mounted from a file", "no existing file is mounted there")
        return
    docs = docs_of(cfg)
    if not docs:
        R.check(f"compose: prometheus config {rel(cfg)} is a mapping", "empty or unparsable")
        return
    pc = docs[0]
    scrape = [t for job in pc.get("scrape_configs") or [] for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
    R.check(f"compose: {rel(cfg)} scrapes salespulse:9464", None if "salespulse:9464" in scrape else f"targets are {scrape}")
    am = [t for a in (pc.get("alerting") or {}).get("alertmanagers") or [] for sc in a.get("static_configs") or [] for t in sc.get("targets") or []]
    R.check(f"compose: {rel(cfg)} alerts to alertmanager:9093", None if "alertmanager:9093" in am else f"alertmanager targets are {am}")
    bad = [h for h in target_hosts(scrape + am) if h not in names and h not in ("localhost", "127.0.0.1")]
    R.check(f"compose: {rel(cfg)} targets are compose services", f"not a service: {', '.join(bad)}" if bad else None)
    patterns = pc.get("rule_files") or []
    found = []
    for pat in patterns:
        hp = host_path(binds[prom], pat)
        if hp is not None:
            found += glob.glob(str(hp))
    R.check(
        f"compose: prometheus rule_files match mounted rule files ({len(found)})",
        None if found else f"no file matches {patterns} through the mounts",
    )


def check_compose_grafana(services, binds, names):
    graf = find_service(services, "grafana")
    if graf is None:
        R.check("compose: a grafana service", "missing")
        return
    prov = host_path(binds[graf], "/etc/grafana/provisioning")
    if prov is None or not prov.is_dir():
        R.check("compose: grafana provisioning is mounted", "nothing mounted at /etc/grafana/provisioning")
        return
    for f in sorted((prov / "datasources").glob("*.y*ml")):
        for d in docs_of(f):
            for ds in (d or {}).get("datasources") or []:
                url = str(ds.get("url", ""))
                host = urlparse(url).hostname
                R.check(
                    f"compose: grafana datasource {ds.get('name')} ({url}) is reachable in compose",
                    None if host in names else f"{host} is not a compose service (from the Grafana container, localhost is Grafana itself)",
                )
    for f in sorted((prov / "dashboards").glob("*.y*ml")):
        for d in docs_of(f):
            for p in (d or {}).get("providers") or []:
                path = str((p.get("options") or {}).get("path", ""))
                hp = host_path(binds[graf], path)
                n = len(list(hp.glob("*.json"))) if hp is not None and hp.is_dir() else 0
                R.check(
                    f"compose: grafana dashboard provider {p.get('name')} path {path} is mounted with dashboards ({n})",
                    None if n else f"no directory with *.json mounted at {path}",
                )


# ---------------------------------------------------------------- Grafana dashboards

def datasource_uids_in(obj, out):
    if isinstance(obj, dict):
        ds = obj.get("datasource")
        if isinstance(ds, dict) and isinstance(ds.get("uid"), str):
            out.add(ds["uid"])
        for v in obj.values():
            datasource_uids_in(v, out)
    elif isinstance(obj, list):
        for v in obj:
            datasource_uids_in(v, out)


def check_dashboards():
    ddir = DEPLOY / "grafana" / "dashboards"
    files = sorted(ddir.glob("*.json")) if ddir.is_dir() else []
    if not files:
        return
    provisioned = set()
    for f in sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.y*ml")):
        for d in docs_of(f):
            for ds in (d or {}).get("datasources") or []:
                if ds.get("uid"):
                    provisioned.add(ds["uid"])
    uids, missing = {}, []
    for f in files:
        try:
            dash = json.loads(f.read_text())
        except ValueError:
            continue  # reported by the syntax check
        uid = dash.get("uid")
        if uid:
            uids.setdefault(uid, []).append(f.name)
        else:
            missing.append(f.name)
        refs = set()
        datasource_uids_in(dash, refs)
        unknown = sorted(u for u in refs if not u.startswith("$") and not u.startswith("-- ") and u not in provisioned and u not in ("grafana",))
        R.check(
            f"grafana: {f.name} datasources are provisioned",
            f"datasource uid(s) {unknown} not in grafana/provisioning/datasources (uids {sorted(provisioned)})" if unknown else None,
        )
    dup = {u: n for u, n in uids.items() if len(n) > 1}
    R.check(
        f"grafana: dashboard uids are set and unique ({', '.join(sorted(uids))})",
        ([f"uid {u} in {n}" for u, n in dup.items()] + [f"no uid in {m}" for m in missing]) or None,
    )


# ---------------------------------------------------------------- Kubernetes

def subset(sel, labels):
    return all(labels.get(k) == v for k, v in (sel or {}).items())


def check_k8s():
    kust = K8S / "kustomization.yaml"
    if not kust.exists():
        R.check("k8s: deploy/k8s/kustomization.yaml exists", "missing")
        return
    kd = (docs_of(kust) or [{}])[0] or {}
    for r in kd.get("resources") or []:
        p = (K8S / r).resolve()
        R.check(f"k8s: kustomization resource {r} exists", None if p.exists() else f"{rel(p)} does not exist")
    objs = []
    for f in sorted(K8S.glob("*.y*ml")):
        if f.name.startswith("kustomization"):
            continue
        for d in docs_of(f):
            if isinstance(d, dict) and d.get("kind"):
                objs.append((f.name, d))
    by_kind = {}
    for fname, d in objs:
        by_kind.setdefault(d["kind"], []).append((fname, d))

    deps = by_kind.get("Deployment", [])
    if not deps:
        R.check("k8s: a Deployment", "none in deploy/k8s")
        return
    cms = {d["metadata"]["name"]: d for _, d in by_kind.get("ConfigMap", [])}
    services = by_kind.get("Service", [])
    ports = {}
    for fname, dep in deps:
        dname = dep["metadata"]["name"]
        tmpl = dep["spec"]["template"]
        pod_labels = (tmpl.get("metadata") or {}).get("labels") or {}
        pod = tmpl["spec"]
        R.check(
            f"k8s: Deployment {dname} selector matches its pod labels",
            None if subset(dep["spec"].get("selector", {}).get("matchLabels"), pod_labels) else "selector.matchLabels not in the template's labels",
        )
        R.check(
            f"k8s: Deployment {dname} pods carry app.kubernetes.io/name: salespulse",
            None if pod_labels.get("app.kubernetes.io/name") == "salespulse" else f"pod labels are {pod_labels}",
        )
        ports = {}
        for c in pod.get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name"):
                    ports[p["name"]] = p.get("containerPort")
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for vname, v in volumes.items():
            if "configMap" in v:
                cm = v["configMap"].get("name")
                R.check(f"k8s: Deployment {dname} volume {vname} uses ConfigMap {cm}", None if cm in cms else f"no ConfigMap named {cm} (have {sorted(cms)})")
        for c in pod.get("containers") or []:
            cname = c["name"]
            args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            if "--config" in args:
                cfg = args[args.index("--config") + 1] if args.index("--config") + 1 < len(args) else ""
                problem = f"no configMap volume mounted at {os.path.dirname(cfg)} with key {os.path.basename(cfg)}"
                for m in c.get("volumeMounts") or []:
                    v = volumes.get(m["name"], {})
                    cm = cms.get((v.get("configMap") or {}).get("name"))
                    if cm is None:
                        continue
                    mp = m["mountPath"].rstrip("/")
                    if m.get("subPath") and mp == cfg and m["subPath"] in (cm.get("data") or {}):
                        problem = None
                    elif not m.get("subPath") and os.path.dirname(cfg) == mp:
                        items = (v.get("configMap") or {}).get("items")
                        keys = [i["path"] for i in items] if items else list((cm.get("data") or {}).keys())
                        if os.path.basename(cfg) in keys:
                            problem = None
                R.check(f"k8s: container {cname} --config {cfg} is a ConfigMap key", problem)
            for e in c.get("env") or []:
                if e["name"].startswith("SALESPULSE_"):
                    R.check(f"k8s: container {cname} {e['name']} is a configuration key", env_key_problem(e["name"]))
            for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                hg = (c.get(probe) or {}).get("httpGet") or {}
                port = hg.get("port")
                problems = []
                if hg.get("path") != want:
                    problems.append(f"path is {hg.get('path')}, want {want}")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"port {port} is not a container port name")
                R.check(f"k8s: container {cname} {probe} is GET {want}", problems)
            sc = c.get("securityContext") or {}
            psc = pod.get("securityContext") or {}
            problems = []
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append("runAsNonRoot not set")
            if not sc.get("readOnlyRootFilesystem"):
                problems.append("readOnlyRootFilesystem not set")
            R.check(f"k8s: container {cname} runs as non-root on a read-only root filesystem", problems)
        R.check(
            f"k8s: Deployment {dname} has a container port named metrics (9464)",
            None if ports.get("metrics") == 9464 else f"named ports are {ports}",
        )
        for sfname, svc in services:
            sname = svc["metadata"]["name"]
            sel = (svc.get("spec") or {}).get("selector") or {}
            R.check(f"k8s: Service {sname} selector matches the pods of {dname}", None if sel and subset(sel, pod_labels) else f"selector {sel} vs pod labels {pod_labels}")
            for p in (svc.get("spec") or {}).get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                ok = tp in ports if isinstance(tp, str) else tp in ports.values()
                R.check(f"k8s: Service {sname} port {p.get('name')} targets container port {tp}", None if ok else f"container ports are {ports}")
        for _, pm in by_kind.get("PodMonitor", []):
            pname = pm["metadata"]["name"]
            sel = ((pm.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            R.check(f"k8s: PodMonitor {pname} selector matches the pods of {dname}", None if sel and subset(sel, pod_labels) else f"matchLabels {sel} vs pod labels {pod_labels}")
            for ep in (pm.get("spec") or {}).get("podMetricsEndpoints") or []:
                R.check(f"k8s: PodMonitor {pname} endpoint port {ep.get('port')} is a container port name", None if ep.get("port") in ports else f"container ports are {sorted(ports)}")
        for pf in sorted((DEPLOY / "prometheus").glob("*.y*ml")):
            for pc in docs_of(pf):
                jobs = pc.get("scrape_configs") if isinstance(pc, dict) else None
                for job in jobs or []:
                    for sd in job.get("kubernetes_sd_configs") or []:
                        if sd.get("role") != "pod":
                            continue
                        sels = [x.get("label") for x in sd.get("selectors") or [] if x.get("role") == "pod" and x.get("label")]
                        want = dict(kv.split("=", 1) for sel in sels for kv in sel.split(",") if "=" in kv and "!" not in kv)
                        R.check(
                            f"k8s: {rel(pf)} job {job.get('job_name')} pod selector {want} matches the pods of {dname}",
                            None if subset(want, pod_labels) else f"pod labels are {pod_labels}",
                        )
        for _, pdb in by_kind.get("PodDisruptionBudget", []):
            sel = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            R.check(f"k8s: PodDisruptionBudget {pdb['metadata']['name']} selector matches the pods of {dname}", None if sel and subset(sel, pod_labels) else f"matchLabels {sel} vs pod labels {pod_labels}")
    # the ConfigMap's salespulse.toml (ports: the last Deployment's named container ports)
    for cmname, cm in cms.items():
        for key, text in (cm.get("data") or {}).items():
            if not key.endswith(".toml"):
                continue
            try:
                doc = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                R.check(f"k8s: ConfigMap {cmname} {key} is valid TOML", str(e))
                continue
            R.check(f"k8s: ConfigMap {cmname} {key} is valid TOML")
            R.check(f"k8s: ConfigMap {cmname} {key} has only sections and keys of config/salespulse.toml", toml_problems(doc))
            listen = (doc.get("http") or {}).get("listen") or SHIPPED.get("http", {}).get("listen", "")
            port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
            R.check(
                f"k8s: ConfigMap {cmname} http.listen port {port} is the metrics container port",
                None if port == ports.get("metrics") else f"container port metrics is {ports.get('metrics')}",
            )
    for _, sm in by_kind.get("ServiceMonitor", []):
        mname = sm["metadata"]["name"]
        sel = ((sm.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        matched = [s for _, s in services if sel and subset(sel, (s["metadata"].get("labels") or {}))]
        R.check(f"k8s: ServiceMonitor {mname} selector matches a Service's labels", None if matched else f"no Service labelled {sel}")
        sports = {p.get("name") for s in matched for p in (s.get("spec") or {}).get("ports") or []}
        for ep in (sm.get("spec") or {}).get("endpoints") or []:
            R.check(f"k8s: ServiceMonitor {mname} endpoint port {ep.get('port')} is a Service port name", None if ep.get("port") in sports else f"Service ports are {sorted(p for p in sports if p)}")


def check_k8s_bridge():
    """deploy/k8s/bridge: the webhook bridge's Deployment, Service, PodMonitor,
    PDB and ConfigMap (its own labels, port `http`, `bridge` command)."""
    bdir = K8S / "bridge"
    if not bdir.is_dir():
        return
    kd = (docs_of(bdir / "kustomization.yaml") or [{}])[0] or {}
    for r in kd.get("resources") or []:
        p = (bdir / r).resolve()
        R.check(f"k8s bridge: kustomization resource {r} exists", None if p.exists() else f"{rel(p)} does not exist")
    objs = [d for f in sorted(bdir.glob("*.y*ml")) if not f.name.startswith("kustomization") for d in docs_of(f) if isinstance(d, dict) and d.get("kind")]
    kinds = {}
    for d in objs:
        kinds.setdefault(d["kind"], []).append(d)
    deps = kinds.get("Deployment", [])
    if len(deps) != 1:
        R.check("k8s bridge: one Deployment", f"found {len(deps)}")
        return
    dep = deps[0]
    tmpl = dep["spec"]["template"]
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    pod = tmpl["spec"]
    R.check("k8s bridge: pods carry app.kubernetes.io/name: salespulse-bridge (not the engine's label)",
            None if labels.get("app.kubernetes.io/name") == "salespulse-bridge" else f"pod labels are {labels}")
    R.check("k8s bridge: Deployment selector matches its pod labels",
            None if subset(dep["spec"].get("selector", {}).get("matchLabels"), labels) else "selector.matchLabels not in the template's labels")
    cms = {d["metadata"]["name"]: d for d in kinds.get("ConfigMap", [])}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    grace = pod.get("terminationGracePeriodSeconds", 30)
    for c in pod.get("containers") or []:
        args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        R.check(f"k8s bridge: container {c['name']} runs `salespulse bridge`", None if args[:1] == ["bridge"] else f"args are {args}")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        R.check(f"k8s bridge: container {c['name']} has a port named http", None if "http" in ports else f"ports are {ports}")
        for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            hg = (c.get(probe) or {}).get("httpGet") or {}
            R.check(f"k8s bridge: {probe} is GET {want} on port http", None if hg.get("path") == want and hg.get("port") == "http" else f"httpGet is {hg}")
        sc = c.get("securityContext") or {}
        R.check(f"k8s bridge: container {c['name']} runs as non-root on a read-only root filesystem",
                None if (sc.get("runAsNonRoot") or (pod.get("securityContext") or {}).get("runAsNonRoot")) and sc.get("readOnlyRootFilesystem") else "runAsNonRoot / readOnlyRootFilesystem not set")
        for e in c.get("env") or []:
            if e["name"].startswith("SALESPULSE_"):
                R.check(f"k8s bridge: {e['name']} is a configuration key", env_key_problem(e["name"]))
        mounts = {m["mountPath"].rstrip("/"): volumes.get(m["name"], {}) for m in c.get("volumeMounts") or []}
        if "--config" in args:
            cfg = args[args.index("--config") + 1]
            v = mounts.get(os.path.dirname(cfg), {})
            cm = cms.get((v.get("configMap") or {}).get("name"))
            R.check(f"k8s bridge: --config {cfg} is a key of a mounted ConfigMap", None if cm and os.path.basename(cfg) in (cm.get("data") or {}) else "not mounted")
            if cm:
                try:
                    doc = tomllib.loads(cm["data"][os.path.basename(cfg)])
                except (tomllib.TOMLDecodeError, KeyError) as e:
                    R.check("k8s bridge: its salespulse.toml is valid TOML", str(e))
                    continue
                R.check("k8s bridge: its salespulse.toml has only keys of config/salespulse.toml", toml_problems(doc))
                b = doc.get("bridge") or {}
                listen = b.get("listen") or SHIPPED["bridge"]["listen"]
                R.check(f"k8s bridge: bridge.listen {listen} is the http container port",
                        None if listen.rsplit(":", 1)[-1] == str(ports.get("http")) else f"http is {ports.get('http')}")
                for key in ("tokens_file", "webhook_secrets_file"):
                    f = b.get(key)
                    if f:
                        v2 = mounts.get(os.path.dirname(f), {})
                        items = [i["path"] for i in (v2.get("secret") or {}).get("items") or []]
                        R.check(f"k8s bridge: bridge.{key} {f} is a mounted Secret item", None if os.path.basename(f) in items else f"no secret item at {f}")
                for lname, lk in (b.get("lookups") or {}).items():
                    f = lk.get("file")
                    if f:
                        v2 = mounts.get(os.path.dirname(f), {})
                        cm2 = cms.get((v2.get("configMap") or {}).get("name"))
                        R.check(f"k8s bridge: lookup {lname} file {f} is a key of a mounted ConfigMap", None if cm2 and os.path.basename(f) in (cm2.get("data") or {}) else "not mounted")
                sg = b.get("shutdown_grace", SHIPPED["bridge"]["shutdown_grace"])
                m = re.fullmatch(r"(\d+)s", str(sg))
                R.check(f"k8s bridge: terminationGracePeriodSeconds {grace} is above bridge.shutdown_grace {sg}",
                        None if m and grace > int(m.group(1)) else "in-flight requests would be cut short")
    for kind, sel_of in (("Service", lambda d: (d.get("spec") or {}).get("selector")),
                         ("PodMonitor", lambda d: ((d.get("spec") or {}).get("selector") or {}).get("matchLabels")),
                         ("PodDisruptionBudget", lambda d: ((d.get("spec") or {}).get("selector") or {}).get("matchLabels"))):
        for d in kinds.get(kind, []):
            sel = sel_of(d) or {}
            R.check(f"k8s bridge: {kind} {d['metadata']['name']} selects the bridge pods only",
                    None if sel and subset(sel, labels) and sel.get("app.kubernetes.io/name") == "salespulse-bridge" else f"selector {sel}")


def main():
    check_syntax()
    check_dockerfile()
    check_compose()
    check_dashboards()
    check_k8s()
    check_k8s_bridge()
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())

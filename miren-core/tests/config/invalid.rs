//! A table of invalid files: each must produce an error at exactly the right place
//! with the right gist, and render with the right ` --> file:line:col`.

use miren_core::config::{LineIndex, Severity, validate};

/// One invalid file and the error it must produce.
struct Case {
    /// What is wrong, for failure messages.
    what: &'static str,
    file: &'static str,
    /// 1-based line of the error.
    line: usize,
    /// The text the error's span covers, found on that line (empty: a point at
    /// column 1).
    at: &'static str,
    /// A piece of the message.
    gist: &'static str,
}

const fn case(
    what: &'static str,
    file: &'static str,
    line: usize,
    at: &'static str,
    gist: &'static str,
) -> Case {
    Case {
        what,
        file,
        line,
        at,
        gist,
    }
}

const CASES: &[Case] = &[
    // --- unknown keys, with suggestions --------------------------------------
    case(
        "unknown top-level key",
        "name = \"app\"\nservice = 1\n",
        2,
        "service",
        "unknown key `service` at the top level",
    ),
    case(
        "typo in a service key",
        "name = \"app\"\n[services.web]\ncomand = \"x\"\n",
        3,
        "comand",
        "unknown key `comand` in `services.web`",
    ),
    case(
        "typo in a concurrency key",
        "name = \"app\"\n[services.web.concurrency]\nmode = \"auto\"\nrequest_per_instance = 5\n",
        4,
        "request_per_instance",
        "unknown key `request_per_instance`",
    ),
    case(
        "unknown disk key",
        "name = \"app\"\n[services.db.concurrency]\nmode = \"fixed\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\nsize = 10\n",
        8,
        "size",
        "unknown key `size` in `services.db.disks[0]`",
    ),
    case(
        "unknown env key",
        "name = \"app\"\n[[env]]\nkey = \"A\"\nvalue = \"b\"\nvalu = \"c\"\n",
        5,
        "valu",
        "unknown key `valu` in `env[0]`",
    ),
    case(
        "unknown build key",
        "name = \"app\"\n[build]\ndockerfil = \"D\"\n",
        3,
        "dockerfil",
        "unknown key `dockerfil` in `build`",
    ),
    case(
        "scaling key on the service itself",
        "name = \"app\"\n[services.worker]\nnum_instances = 2\n",
        3,
        "num_instances",
        "unknown key `num_instances` in `services.worker`",
    ),
    case(
        "service table at the top level",
        "name = \"app\"\n[web]\ncommand = \"x\"\n",
        2,
        "web",
        "`web` must be `true` or `false`, found a table",
    ),
    // --- the app name -----------------------------------------------------------
    case(
        "missing name",
        "[services.web]\ncommand = \"x\"\n",
        1,
        "",
        "missing key `name`",
    ),
    case(
        "name of the wrong type",
        "name = 5\n",
        1,
        "5",
        "`name` must be a string, found an integer",
    ),
    case(
        "uppercase name",
        "name = \"My_App\"\n",
        1,
        "\"My_App\"",
        "app name `My_App` must be lowercase",
    ),
    case(
        "name starting with a digit",
        "name = \"1app\"\n",
        1,
        "\"1app\"",
        "must start with a letter",
    ),
    case(
        "name ending with a dash",
        "name = \"app-\"\n",
        1,
        "\"app-\"",
        "must not end with `-`",
    ),
    // --- services ---------------------------------------------------------------
    case(
        "uppercase service name",
        "name = \"app\"\n[services.Web]\ncommand = \"x\"\n",
        2,
        "Web",
        "service name `Web` must be lowercase",
    ),
    case(
        "service name with underscore",
        "name = \"app\"\n[services.my_worker]\ncommand = \"x\"\n",
        2,
        "my_worker",
        "service name `my_worker` may only contain",
    ),
    case(
        "services is not a table",
        "name = \"app\"\nservices = \"web\"\n",
        2,
        "\"web\"",
        "`services` must be a table of services",
    ),
    case(
        "a service is not a table",
        "name = \"app\"\n[services]\nweb = \"npm start\"\n",
        3,
        "\"npm start\"",
        "`services.web` must be a table",
    ),
    case(
        "empty command",
        "name = \"app\"\n[services.web]\ncommand = \"\"\n",
        3,
        "\"\"",
        "`command` is empty",
    ),
    case(
        "blank command",
        "name = \"app\"\n[services.web]\ncommand = \"   \"\n",
        3,
        "\"   \"",
        "`command` is empty",
    ),
    case(
        "command is an array",
        "name = \"app\"\n[services.web]\ncommand = [\"npm\", \"start\"]\n",
        3,
        "[\"npm\", \"start\"]",
        "must be a string, found an array",
    ),
    case(
        "uppercase image",
        "name = \"app\"\n[services.db]\nimage = \"Postgres:16\"\n",
        3,
        "\"Postgres:16\"",
        "must have a lowercase repository name",
    ),
    case(
        "image with an empty tag",
        "name = \"app\"\n[services.db]\nimage = \"postgres:\"\n",
        3,
        "\"postgres:\"",
        "is not a valid image reference",
    ),
    case(
        "image URL",
        "name = \"app\"\n[services.db]\nimage = \"https://hub/redis\"\n",
        3,
        "\"https://hub/redis\"",
        "is a URL",
    ),
    case(
        "image with a short digest",
        "name = \"app\"\n[services.db]\nimage = \"redis@sha256:abc\"\n",
        3,
        "\"redis@sha256:abc\"",
        "64 hex digits",
    ),
    case(
        "port zero",
        "name = \"app\"\n[services.web]\nport = 0\n",
        3,
        "0",
        "must be between 1 and 65535, found 0",
    ),
    case(
        "port too large",
        "name = \"app\"\n[services.web]\nport = 70000\n",
        3,
        "70000",
        "must be between 1 and 65535",
    ),
    case(
        "port as a string",
        "name = \"app\"\n[services.web]\nport = \"8080\"\n",
        3,
        "\"8080\"",
        "must be an integer, found a string",
    ),
    // --- concurrency -------------------------------------------------------------
    case(
        "unknown mode",
        "name = \"app\"\n[services.web.concurrency]\nmode = \"manual\"\n",
        3,
        "\"manual\"",
        "unknown mode `manual`",
    ),
    case(
        "zero instances",
        "name = \"app\"\n[services.worker.concurrency]\nnum_instances = 0\n",
        3,
        "0",
        "must be at least 1",
    ),
    case(
        "fractional instances",
        "name = \"app\"\n[services.worker.concurrency]\nnum_instances = 2.5\n",
        3,
        "2.5",
        "must be an integer, found a float",
    ),
    case(
        "num_instances in web's default auto mode",
        "name = \"app\"\n[services.web.concurrency]\nnum_instances = 2\n",
        3,
        "num_instances",
        "`num_instances` only applies in fixed mode, but `web` autoscales by default",
    ),
    case(
        "requests_per_instance in a worker's default fixed mode",
        "name = \"app\"\n[services.worker.concurrency]\nrequests_per_instance = 5\n",
        3,
        "requests_per_instance",
        "only applies in auto mode, but `worker` runs in fixed mode by default",
    ),
    case(
        "scale_down_delay in explicit fixed mode",
        "name = \"app\"\n[services.web.concurrency]\nmode = \"fixed\"\nscale_down_delay = \"5m\"\n",
        4,
        "scale_down_delay",
        "`scale_down_delay` only applies in auto mode, but `web` runs in fixed mode",
    ),
    case(
        "min_instances in fixed mode",
        "name = \"app\"\n[services.web.concurrency]\nmode = \"fixed\"\nmin_instances = 1\n",
        4,
        "min_instances",
        "`min_instances` only applies in auto mode",
    ),
    case(
        "delay in months",
        "name = \"app\"\n[services.web.concurrency]\nscale_down_delay = \"1M\"\n",
        3,
        "\"1M\"",
        "months (`M`) are not a duration unit",
    ),
    case(
        "delay without a unit",
        "name = \"app\"\n[services.web.concurrency]\nscale_down_delay = \"30\"\n",
        3,
        "\"30\"",
        "`30` has no unit",
    ),
    case(
        "delay as a bare number",
        "name = \"app\"\n[services.web.concurrency]\nscale_down_delay = 30\n",
        3,
        "30",
        "must be a duration string, found an integer",
    ),
    case(
        "delay below a second",
        "name = \"app\"\n[services.web.concurrency]\nscale_down_delay = \"500ms\"\n",
        3,
        "\"500ms\"",
        "must be at least 1s",
    ),
    case(
        "delay in days",
        "name = \"app\"\n[services.web.concurrency]\nscale_down_delay = \"2d\"\n",
        3,
        "\"2d\"",
        "`d` is not a duration unit",
    ),
    case(
        "delay with a spelled-out unit",
        "name = \"app\"\n[services.web.concurrency]\nscale_down_delay = \"10 min\"\n",
        3,
        "\"10 min\"",
        "unknown unit `min`",
    ),
    case(
        "min above max",
        "name = \"app\"\n[services.web.concurrency]\nmin_instances = 5\nmax_instances = 2\n",
        3,
        "5",
        "`min_instances` (5) is greater than `max_instances` (2)",
    ),
    case(
        "min above the default max",
        "name = \"app\"\n[services.web.concurrency]\nmin_instances = 30\n",
        3,
        "30",
        "greater than `max_instances` (20)",
    ),
    case(
        "max zero",
        "name = \"app\"\n[services.web.concurrency]\nmax_instances = 0\n",
        3,
        "0",
        "must be at least 1",
    ),
    // --- disks ---------------------------------------------------------------------
    case(
        "disk on an autoscaled web",
        "name = \"app\"\n[services.web]\n[[services.web.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\n",
        4,
        "\"data\"",
        "disk `data` needs exactly one instance, but `web` autoscales by default",
    ),
    case(
        "disk with two instances",
        "name = \"app\"\n[services.db.concurrency]\nnum_instances = 2\n[[services.db.disks]]\nname = \"data\"\nmount_path = \"/data\"\nsize_gb = 1\n",
        5,
        "\"data\"",
        "disk `data` needs exactly one instance, but `db` runs 2",
    ),
    case(
        "disk name with spaces",
        "name = \"app\"\n[[services.db.disks]]\nname = \"PG Data\"\nmount_path = \"/d\"\nsize_gb = 1\n",
        3,
        "\"PG Data\"",
        "disk name `PG Data` must be lowercase",
    ),
    case(
        "relative mount path",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"data\"\nsize_gb = 1\n",
        4,
        "\"data\"",
        "mount path `data` must be absolute",
    ),
    case(
        "root mount path",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/\"\nsize_gb = 1\n",
        4,
        "\"/\"",
        "must not be `/`",
    ),
    case(
        "mount path with ..",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/a/../b\"\nsize_gb = 1\n",
        4,
        "\"/a/../b\"",
        "must not contain `..`",
    ),
    case(
        "mount path with a trailing slash",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/data/\"\nsize_gb = 1\n",
        4,
        "\"/data/\"",
        "must be normalized",
    ),
    case(
        "disk of size zero",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 0\n",
        5,
        "0",
        "must be between 1 and 65536",
    ),
    case(
        "disk too large",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 100000\n",
        5,
        "100000",
        "must be between 1 and 65536",
    ),
    case(
        "disk without a name",
        "name = \"app\"\n[[services.db.disks]]\nmount_path = \"/d\"\nsize_gb = 1\n",
        2,
        "[[services.db.disks]]",
        "missing key `name` in `services.db.disks[0]`",
    ),
    case(
        "disk without a size",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\n",
        2,
        "[[services.db.disks]]",
        "missing key `size_gb`",
    ),
    case(
        "disk shared by two services",
        "name = \"app\"\n[[services.a.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\n[[services.b.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\n",
        7,
        "\"d\"",
        "disk `d` is already used by service `a`",
    ),
    case(
        "two disks at one mount path",
        "name = \"app\"\n[[services.a.disks]]\nname = \"d1\"\nmount_path = \"/d\"\nsize_gb = 1\n[[services.a.disks]]\nname = \"d2\"\nmount_path = \"/d\"\nsize_gb = 1\n",
        8,
        "\"/d\"",
        "two disks of `a` mount at `/d`",
    ),
    case(
        "disks as a plain table",
        "name = \"app\"\n[services.db.disks]\nname = \"d\"\n",
        2,
        "[services.db.disks]",
        "`services.db.disks` must be an array of tables, found a table",
    ),
    case(
        "read_only as a string",
        "name = \"app\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\nread_only = \"true\"\n",
        6,
        "\"true\"",
        "must be `true` or `false`, found a string",
    ),
    // --- env ---------------------------------------------------------------------------
    case(
        "env key with a dash",
        "name = \"app\"\n[[env]]\nkey = \"MY-VAR\"\nvalue = \"1\"\n",
        3,
        "\"MY-VAR\"",
        "environment variable name `MY-VAR` may only contain",
    ),
    case(
        "reserved env key",
        "name = \"app\"\n[[env]]\nkey = \"MIREN_APP\"\nvalue = \"1\"\n",
        3,
        "\"MIREN_APP\"",
        "`MIREN_APP` is reserved",
    ),
    case(
        "env key set twice",
        "name = \"app\"\n[[env]]\nkey = \"A\"\nvalue = \"1\"\n[[env]]\nkey = \"A\"\nvalue = \"2\"\n",
        6,
        "\"A\"",
        "environment variable `A` is set twice in `env`",
    ),
    case(
        "service env key set twice",
        "name = \"app\"\n[[services.web.env]]\nkey = \"A\"\nvalue = \"1\"\n[[services.web.env]]\nkey = \"A\"\nvalue = \"2\"\n",
        6,
        "\"A\"",
        "set twice in `services.web.env`",
    ),
    case(
        "env value as a number",
        "name = \"app\"\n[[env]]\nkey = \"N\"\nvalue = 5\n",
        4,
        "5",
        "`env[0].value` must be a string, found an integer",
    ),
    case(
        "env as a plain table",
        "name = \"app\"\n[env]\nFOO = \"bar\"\n",
        2,
        "[env]",
        "`env` must be an array of tables, found a table",
    ),
    case(
        // (Without a value it is `""`, as upstream has it.)
        "env entry without a key",
        "name = \"app\"\n[[env]]\nvalue = \"A\"\n",
        2,
        "[[env]]",
        "missing key `key` in `env[0]`",
    ),
    // --- build ----------------------------------------------------------------------------
    case(
        "absolute dockerfile",
        "name = \"app\"\n[build]\ndockerfile = \"/etc/Dockerfile\"\n",
        3,
        "\"/etc/Dockerfile\"",
        "must be relative to the app directory",
    ),
    case(
        "dockerfile outside the app",
        "name = \"app\"\n[build]\ndockerfile = \"../Dockerfile\"\n",
        3,
        "\"../Dockerfile\"",
        "must stay inside the app directory",
    ),
    // --- syntax ---------------------------------------------------------------------------
    case(
        "unterminated string",
        "name = \"app\n",
        1,
        "",
        "invalid basic string",
    ),
    case(
        "duplicate key",
        "name = \"a\"\nname = \"b\"\n",
        2,
        "name",
        "duplicate key",
    ),
    case(
        "unclosed table header",
        "name = \"a\"\n[services.web\n",
        2,
        "",
        "unclosed table",
    ),
    // --- operating keys (SPEC §14) --------------------------------------------
    case(
        "a port timeout under a second",
        "name = \"app\"\n[services.web]\nport_timeout = \"500ms\"\n",
        3,
        "\"500ms\"",
        "`port_timeout` must be at least 1s",
    ),
    case(
        "a shutdown timeout that isn't a duration",
        "name = \"app\"\n[services.web.concurrency]\nshutdown_timeout = \"soon\"\n",
        3,
        "\"soon\"",
        "`shutdown_timeout` is not a duration",
    ),
    case(
        "a health path without its slash",
        "name = \"app\"\n[services.web.health]\npath = \"health\"\n",
        3,
        "\"health\"",
        "must start with `/`",
    ),
    case(
        "a health check without its path",
        "name = \"app\"\n[services.web.health]\ninterval = \"5s\"\n",
        2,
        "[services.web.health]",
        "`path`",
    ),
    case(
        "a health check on a service without a port",
        "name = \"app\"\n[services.worker]\ncommand = \"w\"\n[services.worker.health]\npath = \"/h\"\n",
        4,
        "health",
        "no `port` to check it on",
    ),
    case(
        "a mistyped health key",
        "name = \"app\"\n[services.web.health]\npath = \"/h\"\nintervall = \"5s\"\n",
        4,
        "intervall",
        "unknown key `intervall` in `services.web.health`",
    ),
    // --- disks as upstream has them (SPEC §17) -------------------------------------
    case(
        "a mistyped disk provider",
        "name = \"app\"\n[services.db]\ncommand = \"d\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nprovider = \"locale\"\n",
        7,
        "\"locale\"",
        "unknown disk provider `locale`: expected `miren` or `local`",
    ),
    case(
        "a platform disk without a size",
        "name = \"app\"\n[services.db]\ncommand = \"d\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\n",
        4,
        "[[services.db.disks]]",
        "missing key `size_gb`",
    ),
    case(
        "an unknown filesystem",
        "name = \"app\"\n[services.db]\ncommand = \"d\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\nfilesystem = \"ext3\"\n",
        8,
        "\"ext3\"",
        "unknown filesystem `ext3`: expected ext4, xfs or btrfs",
    ),
    // --- port_name / port_type (SPEC §17) ---------------------------------------------
    case(
        "a mistyped port type",
        "name = \"app\"\n[services.dns]\ncommand = \"d\"\nport = 53\nport_type = \"UDP\"\n",
        5,
        "\"UDP\"",
        "unknown port type `UDP`: expected `http`, `tcp` or `udp`",
    ),
    case(
        "a port type without a port",
        "name = \"app\"\n[services.worker]\ncommand = \"w\"\nport_type = \"tcp\"\n",
        4,
        "port_type",
        "`port_type` describes the service's port, and `worker` has none",
    ),
    case(
        "a port name that isn't a label",
        "name = \"app\"\n[services.db]\ncommand = \"d\"\nport = 5432\nport_name = \"Pg_Main\"\n",
        5,
        "\"Pg_Main\"",
        "port name `Pg_Main`",
    ),
    // --- [[services.X.ports]] (SPEC §17) --------------------------------------------
    case(
        "ports mixed with the single-port form",
        "name = \"app\"\n[services.irc]\ncommand = \"i\"\nport = 6667\n[[services.irc.ports]]\nport = 6667\nname = \"irc\"\n",
        4,
        "port",
        "`irc` has both `ports` and `port`",
    ),
    case(
        "a port without a name",
        "name = \"app\"\n[services.irc]\ncommand = \"i\"\n[[services.irc.ports]]\nport = 6667\n",
        4,
        "[[services.irc.ports]]",
        "missing key `name` in `services.irc.ports[0]`",
    ),
    case(
        "a port without a number",
        "name = \"app\"\n[services.irc]\ncommand = \"i\"\n[[services.irc.ports]]\nname = \"irc\"\n",
        4,
        "[[services.irc.ports]]",
        "missing key `port` in `services.irc.ports[0]`",
    ),
    case(
        "two ports of one name",
        "name = \"app\"\n[services.irc]\ncommand = \"i\"\n[[services.irc.ports]]\nport = 6667\nname = \"irc\"\n[[services.irc.ports]]\nport = 6697\nname = \"irc\"\n",
        9,
        "\"irc\"",
        "`irc` has two ports named `irc`",
    ),
    case(
        "http and tcp on one number",
        "name = \"app\"\n[services.app]\ncommand = \"a\"\n[[services.app.ports]]\nport = 8080\nname = \"web\"\n[[services.app.ports]]\nport = 8080\nname = \"raw\"\ntype = \"tcp\"\n",
        8,
        "8080",
        "`app` lists port 8080 (tcp) twice",
    ),
    case(
        "a port type spelled wrong",
        "name = \"app\"\n[services.dns]\ncommand = \"d\"\n[[services.dns.ports]]\nport = 53\nname = \"dns\"\ntype = \"datagram\"\n",
        7,
        "\"datagram\"",
        "unknown port type `datagram`",
    ),
    case(
        "a node port out of range",
        "name = \"app\"\n[services.irc]\ncommand = \"i\"\n[[services.irc.ports]]\nport = 6667\nname = \"irc\"\nnode_port = 70000\n",
        7,
        "70000",
        "node_port",
    ),
    case(
        "one node port for two services",
        "name = \"app\"\n[services.a]\ncommand = \"a\"\n[[services.a.ports]]\nport = 7000\nname = \"a\"\ntype = \"tcp\"\nnode_port = 7000\n[services.b]\ncommand = \"b\"\n[[services.b.ports]]\nport = 7001\nname = \"b\"\ntype = \"tcp\"\nnode_port = 7000\n",
        15,
        "7000",
        "node port 7000 (tcp) is already `a.a`'s",
    ),
    case(
        "Compose's ports list",
        "name = \"app\"\n[services.web]\ncommand = \"w\"\nports = [\"8080:80\"]\n",
        4,
        "\"8080:80\"",
        "must be a table, found a string",
    ),
    case(
        "a port name that isn't a DNS label",
        "name = \"app\"\n[services.irc]\ncommand = \"i\"\n[[services.irc.ports]]\nport = 6667\nname = \"IRC_main\"\n",
        6,
        "\"IRC_main\"",
        "port name `IRC_main`",
    ),
    // --- [static] (SPEC §17) ----------------------------------------------------------
    case(
        "a relative static dir",
        "name = \"app\"\n[static]\ndir = \"public\"\n",
        3,
        "\"public\"",
        "`static.dir` must be an absolute path of the built app",
    ),
    case(
        "an error page outside the static dir",
        "name = \"app\"\n[static]\ndir = \"/app/public\"\nerror_page = \"../secret.html\"\n",
        4,
        "\"../secret.html\"",
        "`static.error_page` must stay inside `static.dir`",
    ),
    case(
        "a static table without dir",
        "name = \"app\"\n[static]\nerror_page = \"404.html\"\n",
        2,
        "[static]",
        "missing key `dir` in `static`",
    ),
    case(
        "a mistyped static key",
        "name = \"app\"\n[static]\ndir = \"/app\"\nerrorpage = \"404.html\"\n",
        4,
        "errorpage",
        "unknown key `errorpage` in `static`",
    ),
    // --- [build] as upstream has it (SPEC §17) ------------------------------------
    case(
        "an empty onbuild command",
        "name = \"app\"\n[build]\nonbuild = [\"npm ci\", \"\"]\n",
        3,
        "[\"npm ci\", \"\"]",
        "`onbuild` has an empty command",
    ),
    case(
        "two build secrets with one id",
        "name = \"app\"\n[[build.secrets]]\nid = \"npm\"\nref = \"a\"\nenv = \"NPM_TOKEN\"\n[[build.secrets]]\nid = \"npm\"\nref = \"b\"\nfile = \"/run/npm\"\n",
        7,
        "\"npm\"",
        "build secret `npm` is defined twice",
    ),
    case(
        "a build secret without a ref",
        "name = \"app\"\n[[build.secrets]]\nid = \"npm\"\nenv = \"NPM_TOKEN\"\n",
        2,
        "[[build.secrets]]",
        "build secret `npm` has no `ref`",
    ),
    case(
        "an env ref that is no secret's path",
        "name = \"app\"\n[[env]]\nkey = \"K\"\nbackend = \"cluster\"\nref = \"a//b\"\n",
        5,
        "\"a//b\"",
        "`a//b` is not a secret path",
    ),
    // --- addons, env backends (SPEC §17) -------------------------------------------------
    case(
        "an addon variant it doesn't have",
        "name = \"app\"\n[addons.miren-postgresql]\nvariant = \"smal\"\n",
        3,
        "\"smal\"",
        "`miren-postgresql` has no variant `smal`: it has `small` and `shared`",
    ),
    case(
        "an addon for a service the app doesn't have",
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[addons.miren-sqlite]\nservices = [\"wroker\"]\n",
        5,
        "[\"wroker\"]",
        "addon `miren-sqlite` names service `wroker`, which the app doesn't have",
    ),
    case(
        "a mistyped addon key",
        "name = \"app\"\n[addons.miren-valkey]\nvarient = \"small\"\n",
        3,
        "varient",
        "unknown key `varient` in `addons.miren-valkey`",
    ),
    case(
        "an autoscaled service with a one-writer database",
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[addons.miren-sqlite]\n",
        4,
        "miren-sqlite",
        "`miren-sqlite` allows one writer, and service `web` autoscales",
    ),
    case(
        "several instances with a one-writer database",
        "name = \"app\"\n[services.worker]\ncommand = \"w\"\n[services.worker.concurrency]\nnum_instances = 3\n[addons.miren-sqlite]\nservices = [\"worker\"]\n",
        6,
        "miren-sqlite",
        "`miren-sqlite` allows one writer, and service `worker` runs 3 instances",
    ),
    case(
        "a service named like an addon's server",
        "name = \"app\"\n[services.miren-postgresql]\nimage = \"postgres:16\"\n[addons.miren-postgresql]\n",
        2,
        "miren-postgresql",
        "service `miren-postgresql` has the name addon `miren-postgresql`'s server runs as",
    ),
    case(
        "an env ref without a backend",
        "name = \"app\"\n[[env]]\nkey = \"STRIPE\"\nref = \"payments/stripe\"\n",
        4,
        "ref",
        "`STRIPE` has `ref` but no `backend`",
    ),
    case(
        "an env ref with a value",
        "name = \"app\"\n[[env]]\nkey = \"STRIPE\"\nvalue = \"x\"\nbackend = \"cluster\"\nref = \"payments/stripe\"\n",
        4,
        "value",
        "`STRIPE` has both `value` and `ref`",
    ),
    // --- metrics (SPEC §17) ------------------------------------------------------------
    case(
        "a metrics interval under 30s",
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[services.web.metrics]\ninterval = \"10s\"\n",
        5,
        "\"10s\"",
        "`interval` must be at least 30s",
    ),
    case(
        "a mistyped metrics key",
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[services.web.metrics]\npth = \"/m\"\n",
        5,
        "pth",
        "unknown key `pth` in `services.web.metrics`",
    ),
    case(
        "a disk owner by name",
        "name = \"app\"\n[services.db]\ncommand = \"d\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\nowner = \"postgres\"\n",
        8,
        "\"postgres\"",
        "disk owner `postgres` is not \"\", \"keep\" or uid[:gid]",
    ),
    // --- aliases (SPEC §17) ------------------------------------------------------------
    case(
        "an alias hiding a command",
        "name = \"app\"\n[aliases]\ndeploy = \"app list\"\n",
        3,
        "deploy",
        "alias `deploy` would hide the `miren deploy` command",
    ),
    case(
        "a two-word alias hiding a subcommand",
        "name = \"app\"\n[aliases]\n\"app list\" = \"app status\"\n",
        3,
        "\"app list\"",
        "alias `app list` would hide the `miren app list` command",
    ),
    case(
        "an alias word that can't be typed",
        "name = \"app\"\n[aliases]\n\"x Tail\" = \"logs\"\n",
        3,
        "\"x Tail\"",
        "alias `x Tail` can't be typed as a command",
    ),
    case(
        "an alias of nothing",
        "name = \"app\"\n[aliases]\nnothing = \"  \"\n",
        3,
        "\"  \"",
        "alias `nothing` runs nothing",
    ),
    // --- args (SPEC §17) ---------------------------------------------------------------
    case(
        "args with a command",
        "name = \"app\"\n[services.db]\nimage = \"postgres:16\"\ncommand = \"postgres\"\nargs = [\"-c\", \"fsync=off\"]\n",
        5,
        "[\"-c\", \"fsync=off\"]",
        "`db` has both `command` and `args`",
    ),
    case(
        "empty args",
        "name = \"app\"\n[services.db]\nimage = \"postgres:16\"\nargs = []\n",
        4,
        "[]",
        "`args` is empty",
    ),
    case(
        "args as one string",
        "name = \"app\"\n[services.db]\nimage = \"postgres:16\"\nargs = \"-c fsync=off\"\n",
        4,
        "\"-c fsync=off\"",
        "`services.db.args` must be an array of strings, found a string",
    ),
    // --- env metadata (SPEC §17) --------------------------------------------------
    case(
        "a mistyped env flag",
        "name = \"app\"\n[[env]]\nkey = \"K\"\nrequird = true\n",
        4,
        "requird",
        "unknown key `requird` in `env[0]`",
    ),
    case(
        "required as a string",
        "name = \"app\"\n[[env]]\nkey = \"K\"\nrequired = \"yes\"\n",
        4,
        "\"yes\"",
        "`env[0].required` must be `true` or `false`, found a string",
    ),
    // --- tasks (SPEC §14, upstream's rules) ------------------------------------
    case(
        "a task without a command",
        "name = \"app\"\n[tasks.migrate]\ntrigger = \"deploy\"\n",
        2,
        "[tasks.migrate]",
        "missing key `command` in `tasks.migrate`",
    ),
    case(
        "a mistyped trigger",
        "name = \"app\"\n[tasks.migrate]\ncommand = \"m\"\ntrigger = \"deplyo\"\n",
        4,
        "\"deplyo\"",
        "unknown trigger `deplyo`: expected `deploy`, `schedule` or `manual`",
    ),
    case(
        "a cron-minded trigger",
        "name = \"app\"\n[tasks.report]\ncommand = \"r\"\ntrigger = \"cron\"\nschedule = \"daily\"\n",
        4,
        "\"cron\"",
        "unknown trigger `cron`",
    ),
    case(
        "a scheduled task with no schedule",
        "name = \"app\"\n[tasks.report]\ncommand = \"r\"\ntrigger = \"schedule\"\n",
        4,
        "\"schedule\"",
        "scheduled task `report` has no `every` or `schedule`",
    ),
    case(
        "both every and schedule",
        "name = \"app\"\n[tasks.report]\ncommand = \"r\"\ntrigger = \"schedule\"\nevery = \"1h\"\nschedule = \"daily\"\n",
        6,
        "\"daily\"",
        "has both `every` and `schedule`",
    ),
    case(
        "every that doesn't divide a day",
        "name = \"app\"\n[tasks.report]\ncommand = \"r\"\ntrigger = \"schedule\"\nevery = \"7m\"\n",
        5,
        "\"7m\"",
        "`every` must divide a day evenly, found \"7m\"",
    ),
    case(
        "a schedule systemd would refuse",
        "name = \"app\"\n[tasks.report]\ncommand = \"r\"\ntrigger = \"schedule\"\nschedule = \"*:*/15\"\n",
        5,
        "\"*:*/15\"",
        "`schedule` is not a calendar event",
    ),
    case(
        "a schedule on a manual task",
        "name = \"app\"\n[tasks.report]\ncommand = \"r\"\nevery = \"1h\"\n",
        4,
        "\"1h\"",
        "`every` only applies to scheduled tasks, but `report` is triggered by manual",
    ),
    case(
        "retries on a manual task",
        "name = \"app\"\n[tasks.seed]\ncommand = \"s\"\nretries = 2\n",
        4,
        "retries",
        "`retries` is not allowed on manual task `seed`",
    ),
    case(
        "a task of a service the app doesn't have",
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[services.worker]\ncommand = \"k\"\n[tasks.seed]\ncommand = \"s\"\nservice = \"wroker\"\n",
        8,
        "\"wroker\"",
        "task `seed` runs with service `wroker`, which the app doesn't have",
    ),
    case(
        "a task timeout without a unit",
        "name = \"app\"\n[tasks.seed]\ncommand = \"s\"\ntimeout = 600\n",
        4,
        "600",
        "must be a duration string",
    ),
    case(
        "a mistyped task key",
        "name = \"app\"\n[tasks.seed]\ncommand = \"s\"\nmax_concurent = 2\n",
        4,
        "max_concurent",
        "unknown key `max_concurent` in `tasks.seed`",
    ),
    case(
        "max_concurrent of zero",
        "name = \"app\"\n[tasks.seed]\ncommand = \"s\"\nmax_concurrent = 0\n",
        4,
        "0",
        "must be at least 1",
    ),
    case(
        "web = false with a web service",
        "name = \"app\"\nweb = false\n[services.web]\ncommand = \"w\"\n",
        2,
        "false",
        "`web = false`, but the app has a `web` service",
    ),
    case(
        "a task name that isn't a DNS label",
        "name = \"app\"\n[tasks.Db_Migrate]\ncommand = \"m\"\n",
        2,
        "Db_Migrate",
        "task name `Db_Migrate`",
    ),
];

/// The 1-based column range `at` covers on `line` of `src` (exclusive end).
fn columns(src: &str, line: usize, at: &str) -> Option<(usize, usize)> {
    let text = src.lines().nth(line - 1)?;
    if at.is_empty() {
        return None;
    }
    let byte = text.find(at)?;
    let start = text[..byte].chars().count() + 1;
    Some((start, start + at.chars().count()))
}

#[test]
fn every_invalid_file_reports_its_error_at_the_right_place() {
    assert!(
        CASES.len() >= 40,
        "the table should cover at least 40 files"
    );
    let mut failures = Vec::new();
    for c in CASES {
        let v = validate(c.file);
        let idx = LineIndex::new(c.file);
        let found = v
            .diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error && d.message.contains(c.gist));
        let Some(d) = found else {
            failures.push(format!(
                "{}: no error containing {:?}; got {:#?}",
                c.what,
                c.gist,
                v.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()
            ));
            continue;
        };
        assert!(
            !v.is_valid(),
            "{}: an error must make the file invalid",
            c.what
        );
        let start = idx.position(d.span.start);
        let end = idx.position(d.span.end);
        if start.line != c.line {
            failures.push(format!(
                "{}: error on line {}, expected {}",
                c.what, start.line, c.line
            ));
            continue;
        }
        if let Some((from, to)) = columns(c.file, c.line, c.at)
            && ((start.column, end.column) != (from, to) || end.line != c.line)
        {
            failures.push(format!(
                "{}: error covers {}:{}..{}:{}, expected {}:{from}..{to} ({:?})",
                c.what, start.line, start.column, end.line, end.column, c.line, c.at
            ));
            continue;
        }
        let rendered = v.report(".miren/app.toml", c.file).render(false);
        let arrow = format!("--> .miren/app.toml:{}:{}", start.line, start.column);
        if !rendered.contains(&arrow) || !rendered.contains(c.gist) {
            failures.push(format!(
                "{}: rendered text lacks {arrow:?} or the message:\n{rendered}",
                c.what
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn a_file_with_many_problems_reports_all_of_them_in_one_pass() {
    let src = r#"name = "Shop"

[[env]]
key = "MIREN_MODE"
value = "x"

[services.web]
comand = "npm start"
port = 0

[services.web.concurrency]
mode = "auto"
scale_down_delay = "1M"

[services.postgres]
image = "postgres:16"

[[services.postgres.disks]]
name = "pgdata"
mount_path = "var/lib/postgresql/data"
size_gb = 20
"#;
    let v = validate(src);
    let messages: Vec<&str> = v.errors().map(|d| d.message.as_str()).collect();
    for gist in [
        "app name `Shop` must be lowercase",
        "`MIREN_MODE` is reserved",
        "unknown key `comand`",
        "must be between 1 and 65535",
        "months (`M`) are not a duration unit",
        "mount path `var/lib/postgresql/data` must be absolute",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(gist)),
            "missing {gist:?} in {messages:#?}"
        );
    }
    assert_eq!(messages.len(), 6, "exactly these errors: {messages:#?}");
    // In source order, so the output reads top to bottom.
    let starts: Vec<usize> = v.errors().map(|d| d.span.start).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn syntax_errors_type_errors_and_rule_violations_come_together() {
    let src = "name = \"app\"\n[services.web]\nport = \"80\"\ncommand = \"\"\n[services.worker]\ncommand = \"x\" y\n";
    let v = validate(src);
    let messages: Vec<&str> = v.errors().map(|d| d.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("must be an integer")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("`command` is empty")),
        "{messages:?}"
    );
    assert!(
        v.errors()
            .any(|d| d.path.is_empty() && d.span.start >= src.find("y\n").unwrap_or(0) - 1),
        "syntax error: {messages:?}"
    );
}

#[test]
fn three_disk_problems_in_one_service_are_all_reported() {
    let src = "name = \"app\"\n[services.web]\n[[services.web.disks]]\nname = \"Data\"\nmount_path = \"/\"\nsize_gb = 0\n";
    let v = validate(src);
    let messages: Vec<&str> = v.errors().map(|d| d.message.as_str()).collect();
    for gist in [
        "disk name `Data` must be lowercase",
        "must not be `/`",
        "must be between 1 and 65536",
        "needs exactly one instance",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(gist)),
            "missing {gist:?} in {messages:#?}"
        );
    }
}

#[test]
fn a_bad_mode_does_not_also_blame_the_keys_that_depend_on_it() {
    let v = validate("name = \"app\"\n[services.web.concurrency]\nmode = 3\nnum_instances = 2\n");
    let messages: Vec<&str> = v.errors().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].contains("must be a string"));
}

#[test]
fn typos_come_with_an_edit_that_fixes_them() {
    let src = "name = \"app\"\n[services.web]\ncomand = \"x\"\n[services.web.concurrency]\nmode = \"fixd\"\n";
    let v = validate(src);
    let fixes: Vec<String> = v
        .diagnostics
        .iter()
        .filter_map(|d| d.suggestion.as_ref())
        .map(|s| format!("{}→{}", &src[s.span.clone()], s.replacement))
        .collect();
    assert_eq!(fixes, ["comand→command", "\"fixd\"→\"fixed\""]);
}

#[test]
fn warnings_leave_the_file_valid() {
    let src = "name = \"app\"\n[[env]]\nkey = \"PORT\"\nvalue = \"1\"\n[services.web]\ncommand = \"gunicorn a:b --bind 0.0.0.0:8000\"\n[services.worker.concurrency]\nmode = \"auto\"\n";
    let v = validate(src);
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let warnings: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("`PORT` is set by the platform")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("binds the fixed port 8000")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("only `web` receives requests")),
        "{warnings:?}"
    );
    assert!(
        v.diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
}

#[test]
fn no_services_is_valid_with_an_implied_web() {
    let v = validate("name = \"app\"\n");
    assert!(v.is_valid());
    assert!(
        v.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning && d.message.contains("no services"))
    );
    let r = v.resolved.expect("valid");
    assert_eq!(r.services.keys().collect::<Vec<_>>(), ["web"]);
    assert_eq!(r.services["web"].port, Some(3000));
}

#[test]
fn after_a_syntax_error_only_what_is_certain_is_reported() {
    for src in [
        "name = \"a\"\n[services.web\nport = 8080\n",
        "name = \"a\"\n[services.web]\ncommand = \"x\nport = 1\n",
        "[services.web\ncommand = \"x\"\n",
    ] {
        let v = validate(src);
        let all: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(v.diagnostics.len(), 1, "{src:?}: {all:?}");
        assert_eq!(
            v.diagnostics[0].label.as_deref(),
            Some("invalid TOML"),
            "{all:?}"
        );
    }
    // What is wrong before the syntax error still is.
    let v = validate("name = \"A_B\"\n[services.web\n");
    let all: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("app name `A_B`"), "{all:?}");
}

#[test]
fn without_a_name_the_app_is_named_after_its_directory_and_says_so() {
    let src = "[services.web]\ncommand = \"x\"\n";
    let v = miren_core::config::validate_in(src, Some("My_Shop"));
    let app = v
        .resolved
        .as_ref()
        .unwrap_or_else(|| panic!("{:#?}", v.diagnostics));
    assert_eq!((app.name.as_str(), app.inferred_name), ("my-shop", true));
    assert_eq!(v.diagnostics.len(), 1);
    assert!(!v.diagnostics[0].is_error());
    assert_eq!(
        v.diagnostics[0].message,
        "no `name`: the app is `my-shop`, after its directory"
    );
    // A name in the file wins, and nothing is said.
    let named = miren_core::config::validate_in(
        "name = \"shop\"\n[services.web]\ncommand = \"x\"\n",
        Some("elsewhere"),
    );
    assert_eq!(
        named.resolved.map(|r| (r.name, r.inferred_name)),
        Some(("shop".into(), false))
    );
    assert!(named.diagnostics.is_empty());
    // A directory that can't be a name, or none: `name` is required.
    for dir in [Some("123"), None] {
        let v = miren_core::config::validate_in(src, dir);
        assert!(!v.is_valid());
        assert!(
            v.diagnostics[0].message.contains("missing key `name`"),
            "{:?}",
            v.diagnostics
        );
    }
}

#[test]
fn upstreams_disk_keys_validate_and_say_what_is_not_applied() {
    // A local disk needs no size and may be used by an autoscaled web.
    let v = validate(
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[[services.web.disks]]\nname = \"cache\"\nmount_path = \"/cache\"\nprovider = \"local\"\n",
    );
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    let app = v.resolved.as_ref().unwrap_or_else(|| panic!("invalid"));
    let web = &app.services["web"];
    assert!(!web.disks[0].exclusive());
    let v = validate(
        "name = \"app\"\n[services.db]\ncommand = \"d\"\n[[services.db.disks]]\nname = \"d\"\nmount_path = \"/d\"\nsize_gb = 1\nfilesystem = \"xfs\"\nlease_timeout = \"2m\"\n",
    );
    assert!(v.is_valid());
    let warnings: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        warnings,
        [
            "`filesystem = \"xfs\"` is recorded but not applied here",
            "`lease_timeout` is not needed here"
        ]
    );
}

#[test]
fn unknown_addons_backends_and_workload_role_are_accepted_with_what_happens_instead() {
    let v = validate(
        "name = \"app\"\nworkload_role = \"app-readonly\"\n[[env]]\nkey = \"STRIPE\"\nbackend = \"cluster\"\nref = \"payments/stripe\"\n[[env]]\nkey = \"VAULTED\"\nbackend = \"prod-vault\"\nref = \"secret/data/x\"\n[services.web]\ncommand = \"w\"\n[addons.miren-postgresql]\nvariant = \"small\"\nversion = \"16\"\n[addons.storage]\nvariant = \"minio\"\n",
    );
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let msgs: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`workload_role = \"app-readonly\"` grants nothing here: this platform has no in-cluster API for sandboxes",
            "this server has no secret backend `prod-vault`: a deploy fails until `VAULTED` names a `cluster` secret",
            "this platform knows no addon `storage`: a deploy of this file fails",
        ]
    );
    let app = v.resolved.unwrap_or_else(|| panic!("valid"));
    // The addons as declared, defaults filled.
    let pg = &app.addons["miren-postgresql"];
    assert_eq!(
        (pg.variant.as_str(), pg.version.as_deref()),
        ("small", Some("16"))
    );
    // A reference is a secret, read from the server's store when a sandbox starts.
    let web = &app.services["web"];
    assert_eq!(
        web.secret_refs["STRIPE"],
        ("cluster".to_string(), "payments/stripe".to_string())
    );
    assert!(!web.required_env.contains_key("STRIPE"), "{web:#?}");
    assert!(app.sensitive_env.contains("STRIPE"));
}

#[test]
fn metrics_are_accepted_and_said_to_be_unscraped() {
    let v = validate(
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[services.web.metrics]\npath = \"/metrics\"\nport = 9100\ninterval = \"60s\"\npublic = true\n",
    );
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let msgs: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["`web`'s metrics are not scraped: this server has no metrics pipeline yet"]
    );
    let off = validate(
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[services.web.metrics]\nenabled = false\n",
    );
    assert!(off.diagnostics.is_empty(), "{:#?}", off.diagnostics);
}

#[test]
fn a_tcp_web_is_said_not_to_be_routed() {
    let v = validate("name = \"app\"\n[services.web]\ncommand = \"w\"\nport_type = \"tcp\"\n");
    assert!(v.is_valid());
    let msgs: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["`web`'s port is tcp: the proxy routes HTTP only, so no request reaches it"]
    );
    let app = v.resolved.unwrap_or_else(|| panic!("invalid"));
    assert_eq!(
        app.services["web"].port_type,
        Some(miren_core::config::PortType::Tcp)
    );
}

#[test]
fn upstreams_stack_keys_and_build_secrets_say_what_they_do_here() {
    let v = validate(
        "name = \"app\"\n[build]\nversion = \"3.12\"\nalpine_image = \"alpine:3.20\"\nonbuild = [\"make assets\"]\n[[build.secrets]]\nid = \"npm\"\nref = \"registry/npm\"\nenv = \"NPM_TOKEN\"\n[services.web]\ncommand = \"w\"\n",
    );
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let msgs: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`build.version` is accepted but not used here",
            "`build.alpine_image` is accepted but not used here",
        ]
    );
    let app = v.resolved.unwrap_or_else(|| panic!("invalid"));
    assert_eq!(app.onbuild, ["make assets"]);
    let s = &app.build_secrets[0];
    assert_eq!(
        (s.id.as_str(), s.backend.as_str(), s.reference.as_str()),
        ("npm", "cluster", "registry/npm")
    );
}

/// Upstream's game server (traffic-routing docs): `PORT` is the first http port,
/// the others are extra named ports with their node ports.
#[test]
fn several_ports_resolve_to_port_and_named_extras() {
    use miren_core::config::{NamedPort, PortType};
    let v = validate(
        r#"name = "gameserver"

[services.game]
command = "./server --admin 3000 --game 27015"

[[services.game.ports]]
port = 27015
name = "game"
type = "udp"
node_port = 27015

[[services.game.ports]]
port = 3000
name = "admin"
type = "http"

[[services.game.ports]]
port = 7000
name = "data"
type = "tcp"
node_port = 7000

[services.game.concurrency]
mode = "fixed"
num_instances = 1
"#,
    );
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    let app = v.resolved.unwrap_or_else(|| panic!("valid"));
    let game = &app.services["game"];
    assert_eq!(game.port, Some(3000), "the first http port is PORT");
    assert_eq!(game.port_name.as_deref(), Some("admin"));
    assert_eq!(game.port_type, None, "http");
    assert_eq!(game.node_port, None);
    assert_eq!(
        game.extra_ports,
        [
            NamedPort {
                name: "game".into(),
                port: 27015,
                kind: PortType::Udp,
                node_port: Some(27015),
            },
            NamedPort {
                name: "data".into(),
                port: 7000,
                kind: PortType::Tcp,
                node_port: Some(7000),
            },
        ]
    );
    // Without an http port, the first one is PORT.
    let tcp_only = validate(
        "name = \"irc\"\n[services.irc]\ncommand = \"./ircd\"\n[[services.irc.ports]]\nport = 6667\nname = \"irc\"\ntype = \"tcp\"\nnode_port = 6667\n[[services.irc.ports]]\nport = 6697\nname = \"irc-tls\"\ntype = \"tcp\"\n",
    );
    let app = tcp_only.resolved.unwrap_or_else(|| panic!("valid"));
    let irc = &app.services["irc"];
    assert_eq!(irc.port, Some(6667));
    assert_eq!(irc.port_name, None, "named after the service");
    assert_eq!(irc.port_type, Some(PortType::Tcp));
    assert_eq!(irc.node_port, Some(6667));
    assert_eq!(irc.extra_ports.len(), 1);
    assert_eq!(irc.extra_ports[0].var(), "PORT_IRC_TLS");
}

#[test]
fn a_web_with_ports_but_no_http_one_is_said_not_to_be_routed() {
    let v = validate(
        "name = \"app\"\n[services.web]\ncommand = \"w\"\n[[services.web.ports]]\nport = 7000\nname = \"raw\"\ntype = \"tcp\"\n",
    );
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let msgs: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["`web` has no `http` port: the proxy routes HTTP only, so no request reaches it"]
    );
}

#[test]
fn an_addon_says_what_a_shared_variant_and_a_key_of_the_file_do_here() {
    let v = validate(
        "name = \"app\"\n[[env]]\nkey = \"DATABASE_URL\"\nvalue = \"postgres://elsewhere/db\"\n[services.web]\ncommand = \"w\"\n[addons.miren-postgresql]\nvariant = \"shared\"\n",
    );
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    let msgs: Vec<&str> = v.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`DATABASE_URL` is set here and by addon `miren-postgresql`: this value wins",
            "`miren-postgresql` is not shared between apps here: the app gets a server of its own",
        ]
    );
}

#[test]
fn a_static_only_app_runs_no_service_and_says_nothing_about_it() {
    let v = validate("name = \"site\"\n[static]\ndir = \"/app/public/\"\n");
    assert!(v.is_valid(), "{:#?}", v.diagnostics);
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    let app = v.resolved.unwrap_or_else(|| panic!("valid"));
    assert!(app.services.is_empty(), "no implied web");
    let st = app.static_files.unwrap_or_else(|| panic!("no static"));
    assert_eq!(st.dir, "/app/public");
}

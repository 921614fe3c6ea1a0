//! Native filters: *where* to trace (which code, on which threads, how deep below a match) and
//! *what* (which events). Pure Rust, no interpreter: the binding layer turns a code object into
//! a [`CodeInfo`], asks [`Filter::decide`] once per code object and keeps the answer in the
//! code object (see [`cache`]); per thread, a [`ScopeTracker`] extends matches downwards.
//!
//! # Which code matches
//!
//! A [`FilterSpec`] lists patterns of four kinds. Patterns of one kind are alternatives (any may
//! match); every kind given must match. When no module, file or function pattern is given,
//! the user's own code is selected; it can also be asked for explicitly, with other patterns.
//!
//! - **module** `NAME` selects the module `NAME` and everything below it (`pkg` selects `pkg`,
//!   `pkg.sub` and `pkg.sub.deep`, not `pkgextra`); `pkg.*` selects only what is below `pkg`.
//!   In general a module is selected when its name, or the name of a package containing it,
//!   matches the pattern as a [name glob](Glob::name). The module name is the frame's
//!   `__name__`: a script run directly is `__main__`.
//! - **file** is a [path glob](Glob::path) against `co_filename`: `/abs/**/x.py` is anchored,
//!   `app/*.py` matches the end of the path at a `/`, `dir/` is everything below `dir`.
//! - **function** without a dot is a name glob against `co_name` (`handle_*`, `<lambda>`; a
//!   method or nested function matches by its own name too). With a dot it is matched against
//!   `co_qualname`: `Cart.total`, `Cart.*` (every method, and functions nested in them),
//!   `*.total`, and `outer.<locals>.inner` or `outer.*.inner` for a nested function.
//! - **user code**: see [`environment`] for what counts.

pub mod cache;
pub mod depth;
pub mod environment;
pub mod error;
pub mod events;
pub mod glob;
pub mod threads;

pub use cache::CachedDecision;
pub use depth::ScopeTracker;
pub use environment::Environment;
pub use error::{FilterError, PatternKind, PatternProblem};
pub use events::EventMask;
pub use glob::Glob;
pub use threads::ThreadFilter;

/// What the user asked for, as plain strings (from the CLI's options or the Python API's
/// arguments); [`Filter::new`] checks and compiles it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterSpec {
    pub modules: Vec<String>,
    pub files: Vec<String>,
    pub functions: Vec<String>,
    /// Select the user's own code even though other patterns are given.
    pub user_code: bool,
    /// Thread idents and name globs (see [`ThreadFilter`]); empty: every thread.
    pub threads: Vec<String>,
    /// A comma list of event names (see [`EventMask::parse`]); None: every event `sys.settrace`
    /// delivers (`opcode` included, for frames that set `f_trace_opcodes`).
    pub events: Option<String>,
    /// How many calls below a matching frame are traced too (see [`depth`]).
    pub depth: u32,
}

/// What the filter needs to know about a code object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo<'a> {
    /// `co_filename`
    pub filename: &'a str,
    /// `co_name`
    pub name: &'a str,
    /// `co_qualname`
    pub qualname: &'a str,
    /// `__name__` in the globals of the frame that first runs the code; None without one.
    pub module: Option<&'a str>,
}

/// A checked, compiled [`FilterSpec`]. Immutable: to change filters, build a new one, which
/// gets a new [`generation`](Filter::generation) and so makes every cached decision stale.
#[derive(Clone, Debug)]
pub struct Filter {
    spec: FilterSpec,
    modules: Vec<Glob>,
    files: Vec<Glob>,
    functions: Vec<FunctionPattern>,
    user_code: bool,
    threads: ThreadFilter,
    events: EventMask,
    generation: u64,
}

#[derive(Clone, Debug)]
struct FunctionPattern {
    glob: Glob,
    /// The pattern has a dot: match `co_qualname` instead of `co_name`.
    qualified: bool,
}

impl Filter {
    /// A [`FilterSpec::depth`] with no limit.
    pub const UNLIMITED_DEPTH: u32 = u32::MAX;

    /// Checks every pattern and the event list; the first mistake is the error.
    pub fn new(spec: &FilterSpec) -> Result<Self, FilterError> {
        let modules = compile(PatternKind::Module, &spec.modules, module_glob)?;
        let files = compile(PatternKind::File, &spec.files, Glob::path)?;
        let functions = compile(PatternKind::Function, &spec.functions, |pattern| {
            Ok(FunctionPattern {
                glob: Glob::name(pattern)?,
                qualified: pattern.contains('.'),
            })
        })?;
        let user_code =
            spec.user_code || (modules.is_empty() && files.is_empty() && functions.is_empty());
        // Unasked, deliver what sys.settrace would: `opcode` too, which only frames that set
        // `f_trace_opcodes` produce.
        let events = match &spec.events {
            Some(list) => EventMask::parse(list)?,
            None => EventMask::all(),
        };
        Ok(Filter {
            threads: ThreadFilter::new(&spec.threads)?,
            spec: spec.clone(),
            modules,
            files,
            functions,
            user_code,
            events,
            generation: cache::next_generation(),
        })
    }

    /// Whether code matches the *where* patterns (not depth or threads, which are per thread).
    /// Called once per code object; does not allocate.
    pub fn matches(&self, code: &CodeInfo<'_>, env: &Environment) -> bool {
        let module_matches = |glob: &Glob| {
            code.module.is_some_and(|module| {
                // The module itself, then each package containing it.
                let packages = module.match_indices('.').map(|(dot, _)| &module[..dot]);
                std::iter::once(module)
                    .chain(packages)
                    .any(|name| glob.matches(name))
            })
        };
        let function_matches = |pattern: &FunctionPattern| {
            let name = if pattern.qualified {
                code.qualname
            } else {
                code.name
            };
            pattern.glob.matches(name)
        };
        (self.modules.is_empty() || self.modules.iter().any(module_matches))
            && (self.files.is_empty() || self.files.iter().any(|g| g.matches(code.filename)))
            && (self.functions.is_empty() || self.functions.iter().any(function_matches))
            && (!self.user_code || env.is_user_code(code.filename))
    }

    /// [`matches`](Self::matches), stamped with this filter's generation for the code object.
    pub fn decide(&self, code: &CodeInfo<'_>, env: &Environment) -> CachedDecision {
        CachedDecision::new(self.generation, self.matches(code, env))
    }

    /// The answer kept in a code object's slot (`raw`, see [`CachedDecision::to_raw`]) if this
    /// filter made it; None when the slot is empty or stale.
    pub fn cached(&self, raw: u64) -> Option<bool> {
        CachedDecision::from_raw(raw)
            .filter(|decision| decision.is_current(self.generation))
            .map(CachedDecision::matches)
    }

    /// Whether the thread with this ident (`threading.get_ident()`) and name is traced.
    pub fn matches_thread(&self, ident: u64, name: &str) -> bool {
        self.threads.matches(ident, name)
    }

    pub fn events(&self) -> EventMask {
        self.events
    }

    /// Whether [`matches`](Self::matches) looks at the [`Environment`]: only a filter that
    /// selects the user's own code does.
    pub fn selects_user_code(&self) -> bool {
        self.user_code
    }

    pub fn depth(&self) -> u32 {
        self.spec.depth
    }

    /// A tracker for one thread, with this filter's depth.
    pub fn scope_tracker(&self) -> ScopeTracker {
        ScopeTracker::new(self.spec.depth)
    }

    /// Unique in the process; see [`cache`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the filter was built from (for `repr` and messages).
    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }
}

/// Compiles each pattern of one kind, naming the first bad one in the error.
fn compile<T>(
    kind: PatternKind,
    patterns: &[String],
    compile_one: impl Fn(&str) -> Result<T, PatternProblem>,
) -> Result<Vec<T>, FilterError> {
    patterns
        .iter()
        .map(|pattern| {
            compile_one(pattern).map_err(|problem| FilterError::Pattern {
                kind,
                pattern: pattern.clone(),
                problem,
            })
        })
        .collect()
}

/// A module pattern is a name glob; a path or a trailing dot is a mistake worth naming.
fn module_glob(pattern: &str) -> Result<Glob, PatternProblem> {
    if pattern.contains('/') {
        return Err(PatternProblem::ModuleIsPath);
    }
    if pattern.ends_with('.') {
        return Err(PatternProblem::ModuleEndsWithDot);
    }
    Glob::name(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "/home/u/proj/app";

    fn env() -> Environment {
        Environment::new([
            "/usr/lib/python3.11",
            "/home/u/proj/.venv/lib/python3.11/site-packages",
        ])
    }

    fn filter(configure: impl FnOnce(&mut FilterSpec)) -> Filter {
        let mut spec = FilterSpec::default();
        configure(&mut spec);
        Filter::new(&spec).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn code<'a>(filename: &'a str, qualname: &'a str, module: &'a str) -> CodeInfo<'a> {
        let name = qualname.rsplit('.').next().unwrap();
        CodeInfo {
            filename,
            name,
            qualname,
            module: Some(module),
        }
    }

    fn user(qualname: &str) -> CodeInfo<'_> {
        code("/home/u/proj/app/cart.py", qualname, "app.cart")
    }

    #[test]
    fn by_default_only_the_users_code_matches() {
        let f = filter(|_| {});
        assert!(f.matches(&user("Cart.total"), &env()));
        assert!(f.matches(&code("/home/u/proj/run.py", "<module>", "__main__"), &env()));
        assert!(f.matches(&code("<stdin>", "<module>", "__main__"), &env()));
        for (filename, module) in [
            ("/usr/lib/python3.11/json/decoder.py", "json.decoder"),
            (
                "/home/u/proj/.venv/lib/python3.11/site-packages/requests/api.py",
                "requests.api",
            ),
            ("<frozen importlib._bootstrap>", "importlib._bootstrap"),
            ("<string>", "dataclasses"),
        ] {
            assert!(
                !f.matches(&code(filename, "f", module), &env()),
                "{filename}"
            );
        }
    }

    #[test]
    fn module_selects_the_package_and_everything_below() {
        let f = filter(|s| s.modules = strings(&["app"]));
        assert!(f.matches(&code(APP, "f", "app"), &env()));
        assert!(f.matches(&code(APP, "f", "app.cart"), &env()));
        assert!(f.matches(&code(APP, "f", "app.cart.deep.er"), &env()));
        assert!(!f.matches(&code(APP, "f", "appextra"), &env()));
        assert!(!f.matches(&code(APP, "f", "appextra.x"), &env()));
        assert!(!f.matches(&code(APP, "f", "other.app"), &env()));
        let no_module = CodeInfo {
            module: None,
            ..user("f")
        };
        assert!(!f.matches(&no_module, &env()));
    }

    #[test]
    fn module_patterns_with_dots_and_stars() {
        let f = filter(|s| s.modules = strings(&["app.cart"]));
        assert!(f.matches(&code(APP, "f", "app.cart"), &env()));
        assert!(f.matches(&code(APP, "f", "app.cart.v2"), &env()));
        assert!(!f.matches(&code(APP, "f", "app"), &env()));
        assert!(!f.matches(&code(APP, "f", "app.carts"), &env()));

        let below = filter(|s| s.modules = strings(&["app.*"]));
        assert!(!below.matches(&code(APP, "f", "app"), &env()));
        assert!(below.matches(&code(APP, "f", "app.cart"), &env()));
        assert!(below.matches(&code(APP, "f", "app.cart.v2"), &env()));

        let tests = filter(|s| s.modules = strings(&["tests.test_*"]));
        assert!(tests.matches(&code(APP, "f", "tests.test_cart"), &env()));
        assert!(!tests.matches(&code(APP, "f", "tests.helpers"), &env()));
    }

    #[test]
    fn explicit_patterns_reach_libraries() {
        let f = filter(|s| s.modules = strings(&["json"]));
        let decoder = code("/usr/lib/python3.11/json/decoder.py", "f", "json.decoder");
        assert!(f.matches(&decoder, &env()));
        assert!(!f.matches(&user("f"), &env()));

        let f = filter(|s| s.files = strings(&["<frozen *>", "<string>"]));
        assert!(f.matches(&code("<frozen posixpath>", "join", "posixpath"), &env()));
        assert!(f.matches(&code("<string>", "__init__", "app.cart"), &env()));
    }

    #[test]
    fn user_code_can_be_combined_with_other_patterns() {
        let f = filter(|s| {
            s.functions = strings(&["get"]);
            s.user_code = true;
        });
        assert!(f.matches(&user("Store.get"), &env()));
        let library_get = code("/usr/lib/python3.11/os.py", "Mapping.get", "os");
        assert!(!f.matches(&library_get, &env()));
        // Without `user_code` a function pattern alone reaches every module.
        let f = filter(|s| s.functions = strings(&["get"]));
        assert!(f.matches(&library_get, &env()));
    }

    #[test]
    fn file_globs() {
        let f = filter(|s| s.files = strings(&["app/*.py"]));
        assert!(f.matches(&code("/home/u/proj/app/cart.py", "f", "m"), &env()));
        assert!(!f.matches(&code("/home/u/proj/myapp/cart.py", "f", "m"), &env()));
        assert!(!f.matches(&code("/home/u/proj/app/sub/cart.py", "f", "m"), &env()));

        let f = filter(|s| s.files = strings(&["/home/u/proj/**/test_*.py"]));
        assert!(f.matches(&code("/home/u/proj/test_a.py", "f", "m"), &env()));
        assert!(f.matches(&code("/home/u/proj/tests/unit/test_b.py", "f", "m"), &env()));
        assert!(!f.matches(&code("/home/u/other/tests/test_b.py", "f", "m"), &env()));
    }

    #[test]
    fn function_names_and_qualnames() {
        let by_name = filter(|s| s.functions = strings(&["total"]));
        assert!(by_name.matches(&user("total"), &env()));
        assert!(by_name.matches(&user("Cart.total"), &env()));
        assert!(by_name.matches(&user("outer.<locals>.total"), &env()));
        assert!(!by_name.matches(&user("subtotal"), &env()));

        let by_qualname = filter(|s| s.functions = strings(&["Cart.total"]));
        assert!(by_qualname.matches(&user("Cart.total"), &env()));
        assert!(!by_qualname.matches(&user("total"), &env()));
        assert!(!by_qualname.matches(&user("BigCart.total"), &env()));
        assert!(!by_qualname.matches(&user("Cart.total.<locals>.f"), &env()));

        let methods = filter(|s| s.functions = strings(&["Cart.*"]));
        assert!(methods.matches(&user("Cart.add"), &env()));
        assert!(methods.matches(&user("Cart.add.<locals>.check"), &env()));
        assert!(!methods.matches(&user("Cart"), &env()));

        let any_class = filter(|s| s.functions = strings(&["*.total"]));
        assert!(any_class.matches(&user("Cart.total"), &env()));
        assert!(!any_class.matches(&user("total"), &env()));
    }

    #[test]
    fn nested_functions_and_synthetic_names() {
        let f = filter(|s| s.functions = strings(&["outer.<locals>.inner"]));
        assert!(f.matches(&user("outer.<locals>.inner"), &env()));
        assert!(!f.matches(&user("outer.inner"), &env()));
        let f = filter(|s| s.functions = strings(&["outer.*.inner"]));
        assert!(f.matches(&user("outer.<locals>.inner"), &env()));

        let lambdas = filter(|s| s.functions = strings(&["<lambda>"]));
        assert!(lambdas.matches(&user("<lambda>"), &env()));
        assert!(lambdas.matches(&user("main.<locals>.<lambda>"), &env()));
        assert!(!lambdas.matches(&user("lambda_"), &env()));
        let in_main = filter(|s| s.functions = strings(&["main.*"]));
        for nested in [
            "main.<locals>.<lambda>",
            "main.<locals>.<listcomp>",
            "main.<locals>.<genexpr>",
        ] {
            assert!(in_main.matches(&user(nested), &env()), "{nested}");
        }
        let modules = filter(|s| s.functions = strings(&["<module>"]));
        assert!(modules.matches(&user("<module>"), &env()));
        assert!(!modules.matches(&user("main"), &env()));
        let comprehensions = filter(|s| s.functions = strings(&["<*comp>"]));
        assert!(comprehensions.matches(&user("f.<locals>.<dictcomp>"), &env()));
        assert!(!comprehensions.matches(&user("f.<locals>.<genexpr>"), &env()));
    }

    #[test]
    fn one_kind_is_or_and_kinds_are_and() {
        let f = filter(|s| {
            s.modules = strings(&["app.cart", "app.store"]);
            s.functions = strings(&["add", "remove"]);
        });
        assert!(f.matches(&code(APP, "add", "app.cart"), &env()));
        assert!(f.matches(&code(APP, "remove", "app.store"), &env()));
        assert!(!f.matches(&code(APP, "total", "app.cart"), &env()));
        assert!(!f.matches(&code(APP, "add", "app.util"), &env()));

        let f = filter(|s| {
            s.modules = strings(&["app"]);
            s.files = strings(&["*/store.py"]);
        });
        assert!(f.matches(&code("/p/app/store.py", "f", "app.store"), &env()));
        assert!(!f.matches(&code("/p/app/cart.py", "f", "app.cart"), &env()));
        assert!(!f.matches(&code("/p/lib/store.py", "f", "lib.store"), &env()));
    }

    #[test]
    fn bad_patterns_are_one_line_errors_naming_the_pattern() {
        let error = |spec: FilterSpec| Filter::new(&spec).unwrap_err().to_string();
        let spec = |configure: fn(&mut FilterSpec)| {
            let mut spec = FilterSpec::default();
            configure(&mut spec);
            spec
        };
        assert_eq!(
            error(spec(|s| s.files = strings(&["ok.py", "src/[ab.py"]))),
            "bad file pattern \"src/[ab.py\": the '[' at character 5 is never closed \
             (write [[] to match a literal '[')"
        );
        assert_eq!(
            error(spec(|s| s.modules = strings(&["app/main.py"]))),
            "bad module pattern \"app/main.py\": module names are dotted, like pkg.mod; \
             give paths as a file pattern instead"
        );
        assert!(error(spec(|s| s.modules = strings(&["pkg."]))).contains("ends with '.'"));
        assert!(error(spec(|s| s.modules = strings(&[""]))).ends_with("it is empty"));
        assert!(error(spec(|s| s.functions = strings(&["f[z-a]"])))
            .starts_with("bad function pattern \"f[z-a]\""));
        assert!(error(spec(|s| s.threads = strings(&["w-["]))).starts_with("bad thread"));
        assert_eq!(
            error(spec(|s| s.events = Some("call,lines".into()))),
            "unknown event \"lines\" (valid events: call, line, return, exception, opcode)"
        );
        assert!(error(spec(|s| s.events = Some(String::new()))).starts_with("no event given"));
    }

    #[test]
    fn events_threads_and_depth_are_carried() {
        let f = filter(|_| {});
        assert_eq!(f.events(), EventMask::all());
        assert_eq!(f.depth(), 0);
        assert!(f.matches_thread(1, "any"));

        let f = filter(|s| {
            s.events = Some("call,opcode".into());
            s.threads = strings(&["MainThread"]);
            s.depth = 2;
        });
        assert_eq!(f.events().to_string(), "call,opcode");
        assert!(f.matches_thread(1, "MainThread"));
        assert!(!f.matches_thread(1, "Thread-1"));
        let mut tracker = f.scope_tracker();
        assert!(tracker.on_call(true));
        assert!(tracker.on_call(false));
        assert!(tracker.on_call(false));
        assert!(!tracker.on_call(false));
        assert_eq!(f.spec().depth, 2);
    }

    #[test]
    fn decisions_are_cached_per_generation() {
        let spec = FilterSpec {
            functions: strings(&["total"]),
            ..FilterSpec::default()
        };
        let first = Filter::new(&spec).unwrap();
        let raw = first.decide(&user("total"), &env()).to_raw();
        assert_eq!(first.cached(raw), Some(true));
        let raw_no = first.decide(&user("add"), &env()).to_raw();
        assert_eq!(first.cached(raw_no), Some(false));
        assert_eq!(first.cached(0), None);
        // A clone decides the same, so it keeps the generation.
        assert_eq!(first.clone().cached(raw), Some(true));

        // The same spec built again is a change all the same: its decisions start afresh.
        let second = Filter::new(&spec).unwrap();
        assert_ne!(second.generation(), first.generation());
        assert_eq!(second.cached(raw), None);
        assert_eq!(second.cached(raw_no), None);
        let raw = second.decide(&user("total"), &env()).to_raw();
        assert_eq!(second.cached(raw), Some(true));
        assert_eq!(first.cached(raw), None);
    }
}

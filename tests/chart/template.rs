//! A small Go text/template renderer, so that the chart's templates can be rendered
//! without helm (which cannot be installed here). It knows exactly what
//! charts/berth/templates uses: `{{- -}}` trimming, comments, `if`/`with`/`range` with
//! `else`, `define` and `include`, `$` variables (`:=` and `=`), pipes, parentheses, and
//! the functions in `Run::call`. Anything else is an error rather than a guess, so a
//! template that outgrows the subset fails the tests instead of rendering wrongly.
//!
//! Values are `serde_json::Value`s; a missing field is an error too (Helm would print
//! nothing), since every key the chart reads exists in values.yaml.

use std::collections::BTreeMap;

use serde_json::Value;

pub type Result<T> = std::result::Result<T, String>;

/// Parsed templates: the files by name, and every `define`d template.
pub struct Templates {
    files: BTreeMap<String, Vec<Node>>,
    defines: BTreeMap<String, Vec<Node>>,
}

impl Templates {
    /// Parses `(file name, text)` pairs; the defines of every file are shared, as in Helm.
    pub fn parse(files: &[(String, String)]) -> Result<Templates> {
        let mut templates = Templates {
            files: BTreeMap::new(),
            defines: BTreeMap::new(),
        };
        for (name, text) in files {
            let mut actions = scan(text).map_err(|e| format!("{name}: {e}"))?.into_iter();
            let nodes = match parse_nodes(&mut actions, &mut templates.defines) {
                Ok((nodes, Stop::Eof)) => nodes,
                Ok((_, stop)) => return Err(format!("{name}: {stop:?} without a block")),
                Err(e) => return Err(format!("{name}: {e}")),
            };
            templates.files.insert(name.clone(), nodes);
        }
        Ok(templates)
    }

    /// Renders one file with `data` as `.` and `$`.
    pub fn render(&self, file: &str, data: &Value) -> Result<String> {
        let nodes = self.files.get(file).ok_or(format!("no file {file}"))?;
        self.execute(nodes, data)
            .map_err(|e| format!("{file}: {e}"))
    }

    fn execute(&self, nodes: &[Node], data: &Value) -> Result<String> {
        let mut out = String::new();
        let mut run = Run {
            templates: self,
            vars: vec![(String::new(), data.clone())],
        };
        run.nodes(nodes, data, &mut out)?;
        Ok(out)
    }
}

/// One piece of a template, between or inside `{{ }}`.
enum Piece {
    Text(String),
    Action(Vec<Token>),
}

/// Splits a template into text and tokenized actions. `{{- ` trims the whitespace before
/// an action and ` -}}` the whitespace after it; `{{/* */}}` comments vanish.
fn scan(src: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    loop {
        let (mut text, action) = match rest.find("{{") {
            Some(open) => (&rest[..open], Some(&rest[open + 2..])),
            None => (rest, None),
        };
        if trim_next {
            text = text.trim_start();
        }
        let Some(after) = action else {
            pieces.push(Piece::Text(text.to_owned()));
            return Ok(pieces);
        };
        let close = after.find("}}").ok_or("an unclosed {{")?;
        let mut inside = &after[..close];
        rest = &after[close + 2..];
        if let Some(trimmed) = inside
            .strip_prefix('-')
            .filter(|s| s.starts_with(char::is_whitespace))
        {
            text = text.trim_end();
            inside = trimmed;
        }
        trim_next = false;
        if let Some(trimmed) = inside
            .strip_suffix('-')
            .filter(|s| s.ends_with(char::is_whitespace))
        {
            trim_next = true;
            inside = trimmed;
        }
        pieces.push(Piece::Text(text.to_owned()));
        let inside = inside.trim();
        if inside.starts_with("/*") {
            if !inside.ends_with("*/") {
                return Err(format!("a comment must end with */: {inside}"));
            }
            continue;
        }
        pieces.push(Piece::Action(
            tokenize(inside).map_err(|e| format!("{e} in {{{{ {inside} }}}}"))?,
        ));
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Pipe,
    Comma,
    Declare,
    Assign,
    Str(String),
    Int(i64),
    /// `.` (an empty path) or `.a.b`.
    Field(Vec<String>),
    /// `$` (an empty name) or `$name`, with an optional `.a.b`.
    Var(String, Vec<String>),
    /// A function or a keyword.
    Ident(String),
}

fn tokenize(src: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = src.chars().collect();
    let word = |i: &mut usize| {
        let start = *i;
        while chars
            .get(*i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let path = |i: &mut usize| -> Result<Vec<String>> {
        let mut path = Vec::new();
        while chars.get(*i) == Some(&'.') {
            *i += 1;
            match word(i) {
                w if !w.is_empty() => path.push(w),
                _ if path.is_empty() => break,
                _ => return Err("a field path ends in '.'".into()),
            }
        }
        Ok(path)
    };
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let token = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' | ')' | '|' | ',' | '=' => {
                i += 1;
                match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '|' => Token::Pipe,
                    ',' => Token::Comma,
                    _ => Token::Assign,
                }
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Token::Declare
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("an unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => return Err("escapes in strings are not supported".into()),
                        Some(&c) => s.push(c),
                    }
                    i += 1;
                }
                i += 1;
                Token::Str(s)
            }
            '0'..='9' => Token::Int(word(&mut i).parse().map_err(|e| format!("{e}"))?),
            '.' => Token::Field(path(&mut i)?),
            '$' => {
                i += 1;
                let name = word(&mut i);
                Token::Var(name, path(&mut i)?)
            }
            _ if c.is_ascii_alphabetic() => Token::Ident(word(&mut i)),
            _ => return Err(format!("unexpected {c:?}")),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

enum Node {
    Text(String),
    /// `{{ pipeline }}`: prints its value, unless it declares or assigns a variable.
    Print(Pipeline),
    Block {
        kind: BlockKind,
        pipeline: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Clone, Copy, Debug)]
enum BlockKind {
    If,
    With,
    Range,
}

/// `$a := f x | g` or `$k, $v := ...`: variables, then commands joined by pipes.
struct Pipeline {
    vars: Vec<String>,
    /// `=` rather than `:=`: the variable exists already.
    assign: bool,
    commands: Vec<Vec<Operand>>,
}

enum Operand {
    Function(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Nested(Pipeline),
}

/// What ended a list of nodes.
#[derive(Debug)]
enum Stop {
    Eof,
    Else,
    End,
}

fn parse_nodes(
    pieces: &mut impl Iterator<Item = Piece>,
    defines: &mut BTreeMap<String, Vec<Node>>,
) -> Result<(Vec<Node>, Stop)> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.next() {
        let tokens = match piece {
            Piece::Text(text) => {
                nodes.push(Node::Text(text));
                continue;
            }
            Piece::Action(tokens) => tokens,
        };
        let keyword = match tokens.first() {
            Some(Token::Ident(k)) => k.as_str(),
            _ => "",
        };
        let kind = match keyword {
            "if" => BlockKind::If,
            "with" => BlockKind::With,
            "range" => BlockKind::Range,
            "else" | "end" if tokens.len() > 1 => {
                return Err(format!("{keyword} with arguments: {tokens:?}"))
            }
            "else" => return Ok((nodes, Stop::Else)),
            "end" => return Ok((nodes, Stop::End)),
            "define" => {
                let [_, Token::Str(name)] = tokens.as_slice() else {
                    return Err(format!("define needs a quoted name: {tokens:?}"));
                };
                let (body, Stop::End) = parse_nodes(pieces, defines)? else {
                    return Err(format!("define {name:?} has no end"));
                };
                if defines.insert(name.clone(), body).is_some() {
                    return Err(format!("{name:?} is defined twice"));
                }
                continue;
            }
            "template" | "block" | "break" | "continue" => {
                return Err(format!("{keyword} is not supported"))
            }
            _ => {
                nodes.push(Node::Print(parse_pipeline(&tokens)?));
                continue;
            }
        };
        let pipeline = parse_pipeline(&tokens[1..])?;
        let (body, mut stop) = parse_nodes(pieces, defines)?;
        let mut otherwise = Vec::new();
        if let Stop::Else = stop {
            (otherwise, stop) = parse_nodes(pieces, defines)?;
        }
        let Stop::End = stop else {
            return Err(format!("{kind:?} ended by {stop:?}"));
        };
        nodes.push(Node::Block {
            kind,
            pipeline,
            body,
            otherwise,
        });
    }
    Ok((nodes, Stop::Eof))
}

fn parse_pipeline(tokens: &[Token]) -> Result<Pipeline> {
    let mut pipeline = Pipeline {
        vars: Vec::new(),
        assign: false,
        commands: Vec::new(),
    };
    // Variables first: `$a :=`, `$a =` or `$k, $v :=`.
    if let Some(at) = tokens
        .iter()
        .position(|t| matches!(t, Token::Declare | Token::Assign))
    {
        for (i, token) in tokens[..at].iter().enumerate() {
            match token {
                Token::Var(name, path) if i % 2 == 0 && path.is_empty() => {
                    pipeline.vars.push(name.clone())
                }
                Token::Comma if i % 2 == 1 => {}
                _ => return Err(format!("bad variable declaration: {tokens:?}")),
            }
        }
        pipeline.assign = tokens[at] == Token::Assign;
    }
    let mut rest = match pipeline.vars.len() {
        0 => tokens,
        n => &tokens[2 * n..],
    };
    let mut command = Vec::new();
    while let Some((token, tail)) = rest.split_first() {
        rest = tail;
        command.push(match token {
            Token::Pipe => {
                pipeline.commands.push(std::mem::take(&mut command));
                continue;
            }
            Token::Open => {
                // The matching parenthesis, counting nested ones.
                let mut depth = 1;
                let close = rest
                    .iter()
                    .position(|t| {
                        depth += match t {
                            Token::Open => 1,
                            Token::Close => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .ok_or(format!("unbalanced parentheses: {tokens:?}"))?;
                let nested = parse_pipeline(&rest[..close])?;
                rest = &rest[close + 1..];
                Operand::Nested(nested)
            }
            Token::Ident(name) if command.is_empty() => Operand::Function(name.clone()),
            Token::Field(path) => Operand::Field(path.clone()),
            Token::Var(name, path) => Operand::Var(name.clone(), path.clone()),
            Token::Str(s) => Operand::Str(s.clone()),
            Token::Int(n) => Operand::Int(*n),
            _ => return Err(format!("unexpected {token:?} in {tokens:?}")),
        });
    }
    pipeline.commands.push(command);
    if pipeline.commands.iter().any(|c| c.is_empty()) {
        return Err(format!("an empty command in {tokens:?}"));
    }
    Ok(pipeline)
}

/// One execution of a template: its variables, innermost last; `$` is named "".
struct Run<'a> {
    templates: &'a Templates,
    vars: Vec<(String, Value)>,
}

impl Run<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Print(pipeline) => {
                    let value = self.pipeline(pipeline, dot)?;
                    if pipeline.vars.is_empty() {
                        out.push_str(&text(&value)?);
                    }
                }
                Node::Block {
                    kind,
                    pipeline,
                    body,
                    otherwise,
                } => {
                    // Variables declared inside a block end with it.
                    let scope = self.vars.len();
                    self.block(*kind, pipeline, body, otherwise, dot, out)?;
                    self.vars.truncate(scope);
                }
            }
        }
        Ok(())
    }

    fn block(
        &mut self,
        kind: BlockKind,
        pipeline: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<()> {
        if let BlockKind::Range = kind {
            let items: Vec<(Value, Value)> = match self.pipeline_without_vars(pipeline, dot)? {
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (Value::from(i), v))
                    .collect(),
                // Go ranges over a map in key order.
                Value::Object(map) => {
                    let sorted: BTreeMap<String, Value> = map.into_iter().collect();
                    sorted
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect()
                }
                Value::Null => Vec::new(),
                other => return Err(format!("cannot range over {other}")),
            };
            if items.is_empty() {
                return self.nodes(otherwise, dot, out);
            }
            for (key, item) in items {
                let scope = self.vars.len();
                // One variable gets the element, two get the key and the element.
                match pipeline.vars.as_slice() {
                    [] => {}
                    [v] => self.vars.push((v.clone(), item.clone())),
                    [k, v] => {
                        self.vars.push((k.clone(), key));
                        self.vars.push((v.clone(), item.clone()));
                    }
                    _ => return Err("range takes at most two variables".into()),
                }
                self.nodes(body, &item, out)?;
                self.vars.truncate(scope);
            }
            return Ok(());
        }
        let value = self.pipeline(pipeline, dot)?;
        match (kind, truthy(&value)) {
            (_, false) => self.nodes(otherwise, dot, out),
            (BlockKind::With, true) => self.nodes(body, &value, out),
            (_, true) => self.nodes(body, dot, out),
        }
    }

    /// The value of a range's pipeline; its variables are bound per element instead.
    fn pipeline_without_vars(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value> {
        let mut value = None;
        for command in &pipeline.commands {
            value = Some(self.command(command, dot, value)?);
        }
        value.ok_or("an empty pipeline".into())
    }

    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value> {
        let value = self.pipeline_without_vars(pipeline, dot)?;
        match (pipeline.vars.as_slice(), pipeline.assign) {
            ([], _) => {}
            ([name], false) => self.vars.push((name.clone(), value.clone())),
            ([name], true) => {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or(format!("${name} is assigned before it is declared"))?;
                slot.1 = value.clone();
            }
            (vars, _) => return Err(format!("{vars:?}: several variables outside range")),
        }
        Ok(value)
    }

    /// A function call (the piped value, if any, is its last argument) or a plain value.
    fn command(&mut self, command: &[Operand], dot: &Value, piped: Option<Value>) -> Result<Value> {
        let (first, rest) = command.split_first().ok_or("an empty command")?;
        let mut args = Vec::new();
        for operand in rest {
            args.push(self.operand(operand, dot)?);
        }
        args.extend(piped);
        match first {
            Operand::Function(name) => self.call(name, args),
            _ if args.is_empty() => self.operand(first, dot),
            _ => Err("arguments after a value that is not a function".into()),
        }
    }

    fn operand(&mut self, operand: &Operand, dot: &Value) -> Result<Value> {
        match operand {
            Operand::Field(path) => field(dot, path),
            Operand::Var(name, path) => {
                let (_, value) = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or(format!("${name} is not declared"))?;
                field(value, path)
            }
            Operand::Str(s) => Ok(Value::from(s.as_str())),
            Operand::Int(n) => Ok(Value::from(*n)),
            Operand::Nested(pipeline) => self.pipeline(pipeline, dot),
            Operand::Function(name) => Err(format!("{name} as an argument needs parentheses")),
        }
    }

    /// The functions the chart uses: Go's `not`, Helm's `include`, `required`, `fail` and
    /// `toYaml`, and Sprig's, with Sprig's argument order (the piped value last).
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value> {
        let string = |s: String| Ok(Value::String(s));
        match name {
            "include" => {
                let [template, data] = arity(name, args)?;
                let template = text(&template)?;
                let nodes = self
                    .templates
                    .defines
                    .get(&template)
                    .ok_or(format!("include of {template:?}, which is not defined"))?;
                string(self.templates.execute(nodes, &data)?)
            }
            "required" => {
                let [message, value] = arity(name, args)?;
                match value {
                    Value::Null => Err(text(&message)?),
                    Value::String(s) if s.is_empty() => Err(text(&message)?),
                    value => Ok(value),
                }
            }
            "fail" => {
                let [message] = arity(name, args)?;
                Err(text(&message)?)
            }
            "toYaml" => {
                let [value] = arity(name, args)?;
                let yaml = serde_saphyr::to_string(&value).map_err(|e| format!("toYaml: {e}"))?;
                string(yaml.trim_end_matches('\n').to_owned())
            }
            "not" => {
                let [value] = arity(name, args)?;
                Ok(Value::from(!truthy(&value)))
            }
            "default" => {
                let [fallback, value] = arity(name, args)?;
                Ok(if truthy(&value) { value } else { fallback })
            }
            "quote" => {
                let [value] = arity(name, args)?;
                string(format!("{:?}", text(&value)?))
            }
            "nindent" => {
                let [n, s] = arity(name, args)?;
                let pad = " ".repeat(count(&n)?);
                string(format!(
                    "\n{pad}{}",
                    text(&s)?.replace('\n', &format!("\n{pad}"))
                ))
            }
            "trunc" => {
                let [n, s] = arity(name, args)?;
                string(text(&s)?.chars().take(count(&n)?).collect())
            }
            "trimSuffix" => {
                let [suffix, s] = arity(name, args)?;
                let (suffix, s) = (text(&suffix)?, text(&s)?);
                string(s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_owned())
            }
            "replace" => {
                let [old, new, s] = arity(name, args)?;
                string(text(&s)?.replace(&text(&old)?, &text(&new)?))
            }
            "contains" => {
                let [needle, haystack] = arity(name, args)?;
                Ok(Value::from(text(&haystack)?.contains(&text(&needle)?)))
            }
            "printf" => {
                let (format, args) = args.split_first().ok_or("printf needs a format")?;
                string(printf(&text(format)?, args)?)
            }
            "int" => {
                let [value] = arity(name, args)?;
                Ok(Value::from(int(&value)?))
            }
            "until" => {
                let [n] = arity(name, args)?;
                Ok(Value::from((0..count(&n)?).collect::<Vec<_>>()))
            }
            "list" => Ok(Value::Array(args)),
            "append" => {
                let [list, item] = arity(name, args)?;
                let Value::Array(mut list) = list else {
                    return Err(format!("append to {list}, which is not a list"));
                };
                list.push(item);
                Ok(Value::Array(list))
            }
            "dict" => {
                if !args.len().is_multiple_of(2) {
                    return Err("dict needs key-value pairs".into());
                }
                let mut map = serde_json::Map::new();
                for pair in args.chunks(2) {
                    map.insert(text(&pair[0])?, pair[1].clone());
                }
                Ok(Value::Object(map))
            }
            "join" => {
                let [separator, list] = arity(name, args)?;
                let Value::Array(list) = list else {
                    return Err(format!("join of {list}, which is not a list"));
                };
                let items: Result<Vec<String>> = list.iter().map(text).collect();
                string(items?.join(&text(&separator)?))
            }
            _ => Err(format!("unknown function {name}")),
        }
    }
}

fn arity<const N: usize>(name: &str, args: Vec<Value>) -> Result<[Value; N]> {
    <[Value; N]>::try_from(args)
        .map_err(|args| format!("{name} takes {N} arguments, got {}", args.len()))
}

fn field(value: &Value, path: &[String]) -> Result<Value> {
    path.iter().try_fold(value.clone(), |value, key| {
        value
            .get(key)
            .cloned()
            .ok_or(format!("no field {key} in {value}"))
    })
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How a scalar prints; printing nil, a list or a map is a template bug.
fn text(value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("printing {other}, which is not a scalar")),
    }
}

fn int(value: &Value) -> Result<i64> {
    match value.as_i64() {
        Some(n) => Ok(n),
        None => match value.as_f64() {
            Some(f) if f.fract() == 0.0 => Ok(f as i64),
            _ => Err(format!("{value} is not an integer")),
        },
    }
}

/// A width or a length: Sprig gives negative ones meanings the chart does not use.
fn count(value: &Value) -> Result<usize> {
    usize::try_from(int(value)?).map_err(|_| format!("{value} is negative"))
}

/// Go's printf with the verbs the chart uses: `%s` and `%d`.
fn printf(format: &str, args: &[Value]) -> Result<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next();
        let arg = args
            .next()
            .ok_or(format!("printf {format:?}: too few arguments"))?;
        match verb {
            Some('s') => out.push_str(&text(arg)?),
            Some('d') => out.push_str(&int(arg)?.to_string()),
            _ => return Err(format!("printf {format:?}: unsupported verb {verb:?}")),
        }
    }
    match args.next() {
        Some(_) => Err(format!("printf {format:?}: too many arguments")),
        None => Ok(out),
    }
}

#!/usr/bin/env Rscript
# Peer posteriors from Stan (rstan) with priors that match Mplus's default
# (improper, flat) priors, for checking jaxsem's Gibbs sampler:
#   - regression coefficients, intercepts, loadings: flat (no prior statement)
#   - variances: flat on the variance scale (Mplus IG(-1, 0)); declared
#     real<lower=0> on the variance itself, no prior statement
#   - random-effect covariance matrices: flat on the matrix (Mplus
#     IW(0, -K-1)); declared cov_matrix[K], no prior statement
# Stan programs live in stan/*.stan (hand-written, not brms).
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-rstan r-cran-lme4 \
#     r-cran-jsonlite r-cran-posterior r-cran-lavaan libboost-dev
# (lme4 also supplies data/sleepstudy.csv; lme4/lavaan give the ML values
# stored as ml_check, a sanity check only)
#   Rscript bench/peers/stan_peers.R              # all three models
#   Rscript bench/peers/stan_peers.R demo_ri      # one (or several) models
# Options (defaults give the committed outputs):
#   --chains=4 --warmup=2000 --iter=10000 (kept draws per chain)
#   --seed=20251126 --cores=2 --adapt_delta=0.8
#
# Writes outputs/stan_<model>.json and data/sleepstudy.csv (lme4's data),
# paths relative to this script. data/Demo.twolevel.csv is read, not written
# (lavaan_partables.R writes it).

suppressPackageStartupMessages({
  library(rstan)
  library(jsonlite)
  library(posterior)
})

get_script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1L) return(dirname(normalizePath(f)))
  getwd()
}
here <- get_script_dir()
out_dir <- file.path(here, "outputs")
data_dir <- file.path(here, "data")
stan_dir <- file.path(here, "stan")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

# ---- command line -----------------------------------------------------------
all_models <- c("sleepstudy", "demo_ri", "demo_cfa")
cl_args <- commandArgs(trailingOnly = TRUE)
opt <- list(chains = 4L, warmup = 2000L, iter = 10000L, seed = 20251126L,
            cores = 2L, adapt_delta = 0.8)
which_models <- character(0)
for (a in cl_args) {
  if (grepl("^--[a-z_]+=", a)) {
    key <- sub("^--([a-z_]+)=.*$", "\\1", a)
    val <- sub("^--[a-z_]+=", "", a)
    if (!key %in% names(opt)) stop("unknown option --", key)
    opt[[key]] <- if (key == "adapt_delta") as.numeric(val) else as.integer(val)
  } else if (a == "all") {
    which_models <- c(which_models, all_models)
  } else if (a %in% all_models) {
    which_models <- c(which_models, a)
  } else {
    stop("unknown argument '", a, "'; models: ", paste(all_models, collapse = ", "))
  }
}
if (!length(which_models)) which_models <- all_models
which_models <- unique(which_models)

# ---- rstan set-up -------------------------------------------------------------
# Debian's r-cran-bh is an empty shim; point rstan at libboost-dev's headers.
if (!dir.exists(file.path(system.file("include", package = "BH"), "boost"))) {
  boost_parent <- "/usr/include"
  if (!dir.exists(file.path(boost_parent, "boost")))
    stop("Boost headers not found: apt-get install -y libboost-dev")
  rstan_options(boost_lib = boost_parent)
}
rstan_options(auto_write = FALSE)   # do not drop compiled .rds files in stan/

# ---- data -------------------------------------------------------------------
sleep_csv <- file.path(data_dir, "sleepstudy.csv")
if (!file.exists(sleep_csv)) {
  data("sleepstudy", package = "lme4", envir = environment())
  write.csv(sleepstudy, sleep_csv, row.names = FALSE)
}
demo_csv <- file.path(data_dir, "Demo.twolevel.csv")

data_sleepstudy <- function() {
  d <- read.csv(sleep_csv)
  subj <- as.integer(factor(d$Subject))
  list(stan = list(N = nrow(d), J = max(subj), subj = subj,
                   days = as.numeric(d$Days), reaction = d$Reaction),
       info = list(file = "data/sleepstudy.csv (lme4::sleepstudy)",
                   N = nrow(d), J = max(subj)),
       raw = d)
}

data_demo_ri <- function() {
  d <- read.csv(demo_csv)
  cl <- as.integer(factor(d$cluster))
  J <- max(cl)
  first_row <- match(seq_len(J), cl)
  list(stan = list(N = nrow(d), J = J, cl = cl, y = d$y1,
                   X = as.matrix(d[, c("x1", "x2", "x3")]),
                   W = as.matrix(d[first_row, c("w1", "w2")])),
       info = list(file = "data/Demo.twolevel.csv (lavaan::Demo.twolevel)",
                   N = nrow(d), J = J),
       raw = d)
}

data_demo_cfa <- function() {
  d <- read.csv(demo_csv)
  Y <- as.matrix(d[, c("y1", "y2", "y3")])
  cl <- as.integer(factor(d$cluster))
  J <- max(cl)
  n_j <- as.vector(table(cl))
  ybar <- rowsum(Y, cl) / n_j                       # J x 3 cluster means
  R <- Y - ybar[cl, , drop = FALSE]
  SW <- crossprod(R)                                # pooled within SSCP
  ord <- order(n_j, seq_len(J))                     # sort clusters by size
  sizes <- sort(unique(n_j))
  count <- as.vector(table(factor(n_j, levels = sizes)))
  first <- cumsum(c(1L, count))[seq_along(sizes)]
  list(stan = list(J = J, N = nrow(d), K = length(sizes),
                   nk = as.numeric(sizes), first = as.integer(first),
                   count = as.integer(count),
                   ybar = unname(ybar[ord, , drop = FALSE]),
                   SW = unname(SW)),
       info = list(file = "data/Demo.twolevel.csv (lavaan::Demo.twolevel)",
                   N = nrow(d), J = J,
                   cluster_sizes = as.list(setNames(count, sizes))),
       raw = d)
}

# ---- models -----------------------------------------------------------------
# report name -> Stan parameter name, in output order
specs <- list(
  sleepstudy = list(
    stan_file = "sleepstudy.stan", data = data_sleepstudy,
    statement = paste(
      "Reaction_ij = b_j0 + b_j1 Days_ij + e_ij, (b_j0, b_j1) ~ MVN((g0, g1), Sigma),",
      "e ~ N(0, sigma2); centred random effects"),
    pars = c(
      "between: reaction~1"        = "g[1]",
      "between: s~1"               = "g[2]",
      "between: reaction~~reaction" = "Sigma[1,1]",
      "between: s~~s"              = "Sigma[2,2]",
      "between: reaction~~s"       = "Sigma[1,2]",
      "within: reaction~~reaction" = "sigma2")),
  demo_ri = list(
    stan_file = "demo_ri.stan", data = data_demo_ri,
    statement = paste(
      "y1_ij = a_j + g1 x1_ij + g2 x2_ij + g3 x3_ij + e_ij,",
      "a_j = g0 + h1 w1_j + h2 w2_j + u_j, u ~ N(0, tau2), e ~ N(0, sigma2);",
      "x1-x3 as observed (uncentred); centred random intercepts"),
    pars = c(
      "within: y1~x1"   = "beta[1]",
      "within: y1~x2"   = "beta[2]",
      "within: y1~x3"   = "beta[3]",
      "within: y1~~y1"  = "sigma2",
      "between: y1~w1"  = "h[1]",
      "between: y1~w2"  = "h[2]",
      "between: y1~1"   = "g0",
      "between: y1~~y1" = "tau2")),
  demo_cfa = list(
    stan_file = "demo_cfa.stan", data = data_demo_cfa,
    statement = paste(
      "two-level one-factor CFA of y1-y3: y_ij = nu + Lb fb_j + ub_j + Lw fw_ij + ew_ij,",
      "marker loadings 1 on y1 at both levels; fw, ew, fb, ub all integrated out",
      "analytically (exact two-level normal likelihood: ybar_j ~ MVN(nu,",
      "Sigma_b + Sigma_w / n_j), within SSCP contributes Wishart-type term)"),
    pars = c(
      "within: fw=~y2"   = "lw2",
      "within: fw=~y3"   = "lw3",
      "within: y1~~y1"   = "theta_w[1]",
      "within: y2~~y2"   = "theta_w[2]",
      "within: y3~~y3"   = "theta_w[3]",
      "within: fw~~fw"   = "psi_w",
      "between: fb=~y2"  = "lb2",
      "between: fb=~y3"  = "lb3",
      "between: y1~~y1"  = "theta_b[1]",
      "between: y2~~y2"  = "theta_b[2]",
      "between: y3~~y3"  = "theta_b[3]",
      "between: fb~~fb"  = "psi_b",
      "between: y1~1"    = "nu[1]",
      "between: y2~1"    = "nu[2]",
      "between: y3~1"    = "nu[3]"))
)

# Maximum-likelihood estimates for a sanity check (not a peer for tests).
ml_check <- function(name, raw) {
  out <- tryCatch({
    if (name == "sleepstudy") {
      suppressPackageStartupMessages(library(lme4))
      f <- lmer(Reaction ~ Days + (Days | Subject), data = raw, REML = FALSE)
      vc <- as.data.frame(VarCorr(f))
      S <- VarCorr(f)$Subject
      list(source = "lme4::lmer(REML = FALSE)",
           est = list(`between: reaction~1` = unname(fixef(f)[1]),
                      `between: s~1` = unname(fixef(f)[2]),
                      `between: reaction~~reaction` = S[1, 1],
                      `between: s~~s` = S[2, 2],
                      `between: reaction~~s` = S[1, 2],
                      `within: reaction~~reaction` = sigma(f)^2))
    } else if (name == "demo_ri") {
      suppressPackageStartupMessages(library(lme4))
      f <- lmer(y1 ~ x1 + x2 + x3 + w1 + w2 + (1 | cluster), data = raw,
                REML = FALSE)
      fe <- fixef(f)
      list(source = "lme4::lmer(REML = FALSE)",
           est = list(`within: y1~x1` = unname(fe["x1"]),
                      `within: y1~x2` = unname(fe["x2"]),
                      `within: y1~x3` = unname(fe["x3"]),
                      `within: y1~~y1` = sigma(f)^2,
                      `between: y1~w1` = unname(fe["w1"]),
                      `between: y1~w2` = unname(fe["w2"]),
                      `between: y1~1` = unname(fe["(Intercept)"]),
                      `between: y1~~y1` = VarCorr(f)$cluster[1, 1]))
    } else {
      suppressPackageStartupMessages(library(lavaan))
      m <- "level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3"
      f <- sem(m, data = raw, cluster = "cluster")
      pe <- parameterEstimates(f)
      pe <- pe[!(pe$op == "=~" & pe$rhs == "y1") & !(pe$op == "~1" & pe$level == 1) &
               !(pe$op == "~1" & pe$lhs == "fb"), ]
      lev <- ifelse(pe$level == 1, "within", "between")
      nm <- paste0(lev, ": ", pe$lhs, pe$op, pe$rhs)
      list(source = "lavaan::sem(cluster = 'cluster') (ML)",
           est = as.list(setNames(pe$est, nm)))
    }
  }, error = function(e) list(source = "failed", error = conditionMessage(e)))
  out
}

# ---- run one model ------------------------------------------------------------
run_model <- function(name) {
  spec <- specs[[name]]
  cat(sprintf("== %s: compiling %s\n", name, spec$stan_file))
  stan_path <- file.path(stan_dir, spec$stan_file)
  prog <- paste(readLines(stan_path), collapse = "\n")
  t0 <- proc.time()[["elapsed"]]
  mod <- stan_model(model_code = prog, model_name = name)
  t_compile <- proc.time()[["elapsed"]] - t0
  dat <- spec$data()
  cat(sprintf("== %s: sampling %d chains x (%d warmup + %d kept), seed %d\n",
              name, opt$chains, opt$warmup, opt$iter, opt$seed))
  t0 <- proc.time()[["elapsed"]]
  fit <- sampling(mod, data = dat$stan, chains = opt$chains,
                  warmup = opt$warmup, iter = opt$warmup + opt$iter,
                  thin = 1, seed = opt$seed, cores = opt$cores,
                  control = list(adapt_delta = opt$adapt_delta),
                  refresh = 0)
  t_sample <- proc.time()[["elapsed"]] - t0

  stan_names <- unname(spec$pars)
  arr <- as.array(fit, pars = unique(sub("\\[.*$", "", stan_names)))
  dr <- as_draws_array(arr)
  dr <- subset_draws(dr, variable = stan_names)
  summ <- summarise_draws(
    dr,
    mean = mean, median = median, sd = sd,
    q2.5 = function(x) unname(quantile(x, 0.025)),
    q97.5 = function(x) unname(quantile(x, 0.975)),
    mcse_median = mcse_median, mcse_mean = mcse_mean,
    ess_bulk = ess_bulk, ess_tail = ess_tail, rhat = rhat)

  sp <- get_sampler_params(fit, inc_warmup = FALSE)
  div <- vapply(sp, function(s) sum(s[, "divergent__"]), numeric(1))
  maxtd <- fit@stan_args[[1]]$control$max_treedepth
  if (is.null(maxtd)) maxtd <- 10
  td_hits <- vapply(sp, function(s) sum(s[, "treedepth__"] >= maxtd), numeric(1))
  ebfmi <- vapply(sp, function(s) {
    e <- s[, "energy__"]; sum(diff(e)^2) / sum((e - mean(e))^2)
  }, numeric(1))
  stepsize <- vapply(sp, function(s) s[1, "stepsize__"], numeric(1))

  params <- list()
  for (i in seq_along(spec$pars)) {
    rn <- names(spec$pars)[i]
    row <- summ[summ$variable == spec$pars[[i]], ]
    params[[rn]] <- list(
      stan_name = spec$pars[[i]],
      mean = row$mean, median = row$median, sd = row$sd,
      q2.5 = row$q2.5, q97.5 = row$q97.5,
      mcse_median = row$mcse_median, mcse_mean = row$mcse_mean,
      ess_bulk = row$ess_bulk, ess_tail = row$ess_tail, rhat = row$rhat)
  }

  res <- list(
    model = name,
    model_statement = spec$statement,
    priors = paste(
      "Mplus defaults: coefficients, intercepts, loadings flat (no prior);",
      "variances flat on the variance scale (IG(-1,0)); random-effect",
      "covariance matrix flat on the matrix (IW(0,-K-1)); no prior statements"),
    stan_file = file.path("bench/peers/stan", spec$stan_file),
    stan_program = prog,
    data = dat$info,
    r_version = R.version.string,
    rstan_version = as.character(packageVersion("rstan")),
    stanheaders_version = as.character(packageVersion("StanHeaders")),
    posterior_version = as.character(packageVersion("posterior")),
    seed = opt$seed,
    chains = opt$chains, warmup = opt$warmup, iter_kept_per_chain = opt$iter,
    thin = 1L, draws_kept_total = opt$chains * opt$iter,
    init = "rstan default (uniform(-2, 2) on the unconstrained scale)",
    control = list(adapt_delta = opt$adapt_delta, max_treedepth = maxtd),
    summaries = paste(
      "median, q2.5, q97.5: R median()/quantile(type = 7) over all kept draws;",
      "posterior package:",
      "mcse_median and mcse_mean (Vehtari et al. 2021), ess_bulk, ess_tail,",
      "rhat = max(rank-normalised split bulk/tail R-hat)"),
    divergent_transitions = sum(div),
    divergent_by_chain = as.list(div),
    max_treedepth_hits = sum(td_hits),
    ebfmi_by_chain = as.list(ebfmi),
    stepsize_by_chain = as.list(stepsize),
    max_rhat = max(summ$rhat),
    min_ess_bulk = min(summ$ess_bulk),
    min_ess_tail = min(summ$ess_tail),
    seconds = list(compile = t_compile, sample = t_sample),
    parameters = params,
    ml_check = ml_check(name, dat$raw)
  )
  out_file <- file.path(out_dir, sprintf("stan_%s.json", name))
  write_json(res, out_file, digits = NA, auto_unbox = TRUE, pretty = TRUE)
  cat(sprintf("== %s: divergences %d, max treedepth hits %d, max Rhat %.4f, min bulk ESS %.0f (%.0f s sampling)\n",
              name, sum(div), sum(td_hits), max(summ$rhat), min(summ$ess_bulk),
              t_sample))
  tab <- data.frame(parameter = names(spec$pars),
                    median = sapply(params, `[[`, "median"),
                    sd = sapply(params, `[[`, "sd"),
                    mcse_median = sapply(params, `[[`, "mcse_median"),
                    rhat = sapply(params, `[[`, "rhat"),
                    ess_bulk = sapply(params, `[[`, "ess_bulk"),
                    ml = sapply(names(spec$pars), function(n) {
                      v <- res$ml_check$est[[n]]; if (is.null(v)) NA else v }))
  rownames(tab) <- NULL
  print(tab, digits = 5)
  cat("wrote", out_file, "\n")
  invisible(res)
}

for (m in which_models) run_model(m)

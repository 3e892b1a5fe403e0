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
# Shared rstan helpers (option parsing, sampling, summaries, diagnostics):
# stan_common.R, sourced from this script's folder.

# This script's folder (from Rscript's --file=, else the working directory);
# the shared rstan helpers live next to it in stan_common.R.
here <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f) == 1L) dirname(normalizePath(f)) else getwd()
})
source(file.path(here, "stan_common.R"))   # loads rstan, jsonlite, posterior
out_dir <- file.path(here, "outputs")
data_dir <- file.path(here, "data")
stan_dir <- file.path(here, "stan")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

# ---- command line -----------------------------------------------------------
all_models <- c("sleepstudy", "demo_ri", "demo_cfa")
cli <- parse_peer_args(all_models,
                       list(chains = 4L, warmup = 2000L, iter = 10000L,
                            seed = 20251126L, cores = 2L, adapt_delta = 0.8))
opt <- cli$opt
which_models <- cli$models

setup_rstan()

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
  run <- compile_and_sample(name, stan_dir, spec$stan_file, spec$data, opt)
  dat <- run$dat
  post <- summarise_posterior(run$fit, spec$pars)
  summ <- post$summ
  params <- post$params
  diag <- sampler_diagnostics(run$fit)

  res <- list(
    model = name,
    model_statement = spec$statement,
    priors = paste(
      "Mplus defaults: coefficients, intercepts, loadings flat (no prior);",
      "variances flat on the variance scale (IG(-1,0)); random-effect",
      "covariance matrix flat on the matrix (IW(0,-K-1)); no prior statements"),
    stan_file = file.path("bench/peers/stan", spec$stan_file),
    stan_program = run$prog,
    data = dat$info)
  res <- c(res, run_fields(opt, diag, summ), list(
    seconds = list(compile = run$t_compile, sample = run$t_sample),
    parameters = params,
    ml_check = ml_check(name, dat$raw)
  ))
  out_file <- write_peer_json(res, out_dir, name, diag, summ, run$t_sample)
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

#!/usr/bin/env Rscript
# Peer posteriors from Stan (rstan) for two-level probit models with a random
# intercept, with priors that match Mplus's defaults, for checking jaxsem's
# categorical (data-augmentation) Gibbs sampler:
#   probit_ri:  binary u, P(u_ij = 1) = Phi(beta x_ij + a_j - tau1)
#   ordinal_ri: 4 categories, P(u_ij = k) = Phi(tau_{k+1} - eta_ij) -
#               Phi(tau_k - eta_ij), eta_ij = beta x_ij + a_j
#   a_j ~ N(0, psi); within latent-response variance fixed at 1 (probit).
# Priors (Mplus defaults): beta and thresholds flat (no prior statement;
# ordered thresholds for the ordinal model); psi flat on the variance scale
# (IG(-1, 0)), declared real<lower=0> on the variance, no prior statement.
# Random intercepts are centred (a_j ~ normal(0, sqrt(psi))): with 20-30
# observations per cluster this gave higher ESS than non-centred (ordinal,
# short runs: thresholds about 2x, psi about 6x); the posterior is the same.
# Stan programs: stan/probit_ri.stan, stan/ordinal_ri.stan (hand-written).
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-rstan r-cran-jsonlite \
#     r-cran-posterior libboost-dev
#   .venv/bin/python bench/peers/make_probit_data.py   # writes data/*_ri.csv
#   Rscript bench/peers/probit_stan_peers.R             # both models
#   Rscript bench/peers/probit_stan_peers.R ordinal_ri  # one model
# Options (defaults give the committed outputs):
#   --chains=4 --warmup=2000 --iter=10000 (kept draws per chain)
#   --seed=20251201 --cores=2 --adapt_delta=0.8
#
# Reads data/probit_ri.csv, data/ordinal_ri.csv; writes
# outputs/stan_probit_ri.json, outputs/stan_ordinal_ri.json (paths relative
# to this script).

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

# ---- command line -----------------------------------------------------------
all_models <- c("probit_ri", "ordinal_ri")
cl_args <- commandArgs(trailingOnly = TRUE)
opt <- list(chains = 4L, warmup = 2000L, iter = 10000L, seed = 20251201L,
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
read_ri <- function(file, K) {
  path <- file.path(data_dir, file)
  if (!file.exists(path))
    stop(path, " not found: run .venv/bin/python bench/peers/make_probit_data.py")
  d <- read.csv(path)
  cl <- as.integer(d$cluster)
  u <- as.integer(d$u)
  stopifnot(all(cl >= 1L), all(u >= 0L), all(u <= K - 1L))
  stan <- list(N = nrow(d), J = max(cl), cl = cl, u = u, x = as.numeric(d$x))
  if (K > 2L) stan$K <- K
  list(stan = stan,
       info = list(file = paste0("data/", file), n_obs = nrow(d),
                   n_clusters = length(unique(cl)),
                   category_counts = as.list(setNames(
                     as.vector(table(factor(u, levels = 0:(K - 1L)))),
                     0:(K - 1L)))))
}

# ---- models -----------------------------------------------------------------
# report name -> Stan parameter name, in output order
specs <- list(
  probit_ri = list(
    stan_file = "probit_ri.stan", data_file = "probit_ri.csv", K = 2L,
    statement = paste(
      "binary probit, random intercept: P(u_ij = 1) = Phi(eta_ij - tau1),",
      "eta_ij = beta x_ij + a_j, a_j ~ N(0, psi); latent response",
      "u*_ij = eta_ij + e_ij, e ~ N(0, 1), u = 1 if u* > tau1;",
      "centred random intercepts"),
    pars = c(beta = "beta", psi = "psi", tau1 = "tau1")),
  ordinal_ri = list(
    stan_file = "ordinal_ri.stan", data_file = "ordinal_ri.csv", K = 4L,
    statement = paste(
      "ordinal probit (categories 0..3), random intercept:",
      "P(u_ij = k) = Phi(tau_{k+1} - eta_ij) - Phi(tau_k - eta_ij),",
      "tau_0 = -inf, tau_4 = +inf, eta_ij = beta x_ij + a_j, a_j ~ N(0, psi);",
      "latent response variance 1; centred random intercepts"),
    pars = c(beta = "beta", psi = "psi", tau1 = "tau[1]", tau2 = "tau[2]",
             tau3 = "tau[3]"))
)

priors_text <- paste(
  "Mplus defaults: beta flat (no prior statement); thresholds flat (no prior",
  "statement; ordered[K-1] for the ordinal model, plain real for the binary);",
  "between variance psi flat on the variance scale (IG(-1,0)): declared",
  "real<lower=0> psi, no prior statement, a ~ normal(0, sqrt(psi)) is the",
  "random-intercept distribution (part of the model, not a prior)")

# ---- run one model ------------------------------------------------------------
run_model <- function(name) {
  spec <- specs[[name]]
  cat(sprintf("== %s: compiling %s\n", name, spec$stan_file))
  stan_path <- file.path(stan_dir, spec$stan_file)
  prog <- paste(readLines(stan_path), collapse = "\n")
  t0 <- proc.time()[["elapsed"]]
  mod <- stan_model(model_code = prog, model_name = name)
  t_compile <- proc.time()[["elapsed"]] - t0
  dat <- read_ri(spec$data_file, spec$K)
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
  ok_rhat <- all(summ$rhat < 1.01)
  ok_ess <- all(summ$ess_bulk > 2000)

  res <- list(
    model = name,
    model_statement = spec$statement,
    priors = priors_text,
    stan_file = file.path("bench/peers/stan", spec$stan_file),
    stan_program = prog,
    data = dat$info,
    data_file = dat$info$file,
    n_obs = dat$info$n_obs,
    n_clusters = dat$info$n_clusters,
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
    checks = list(rhat_below_1.01 = ok_rhat, ess_bulk_above_2000 = ok_ess),
    seconds = list(compile = t_compile, sample = t_sample),
    parameters = params
  )
  out_file <- file.path(out_dir, sprintf("stan_%s.json", name))
  write_json(res, out_file, digits = NA, auto_unbox = TRUE, pretty = TRUE)
  cat(sprintf("== %s: divergences %d, max treedepth hits %d, max Rhat %.4f, min bulk ESS %.0f (%.0f s sampling)\n",
              name, sum(div), sum(td_hits), max(summ$rhat), min(summ$ess_bulk),
              t_sample))
  if (!ok_rhat || !ok_ess)
    warning(name, ": convergence check failed (need rhat < 1.01, ess_bulk > 2000)")
  tab <- data.frame(parameter = names(spec$pars),
                    mean = sapply(params, `[[`, "mean"),
                    sd = sapply(params, `[[`, "sd"),
                    mcse_mean = sapply(params, `[[`, "mcse_mean"),
                    q2.5 = sapply(params, `[[`, "q2.5"),
                    q97.5 = sapply(params, `[[`, "q97.5"),
                    rhat = sapply(params, `[[`, "rhat"),
                    ess_bulk = sapply(params, `[[`, "ess_bulk"))
  rownames(tab) <- NULL
  print(tab, digits = 5)
  cat("wrote", out_file, "\n")
  invisible(res)
}

for (m in which_models) run_model(m)

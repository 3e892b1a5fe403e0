# Helpers shared by the rstan peer scripts (stan_peers.R, probit_stan_peers.R):
# command-line parsing, rstan set-up, compiling and sampling a Stan program,
# posterior summaries, sampler diagnostics and the common JSON fields.
# Sourced by those scripts from their own folder; not run on its own.

suppressPackageStartupMessages({
  library(rstan)
  library(jsonlite)
  library(posterior)
})

# Parse the command line: `--key=value` options (keys must be in `opt`;
# adapt_delta numeric, the rest integer), model names from `all_models`, or
# "all". No model named means all of them. Returns list(opt, models).
parse_peer_args <- function(all_models, opt,
                            cl_args = commandArgs(trailingOnly = TRUE)) {
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
  list(opt = opt, models = unique(which_models))
}

# rstan options: Debian's r-cran-bh is an empty shim, so point rstan at
# libboost-dev's headers; do not drop compiled .rds files in stan/.
setup_rstan <- function() {
  if (!dir.exists(file.path(system.file("include", package = "BH"), "boost"))) {
    boost_parent <- "/usr/include"
    if (!dir.exists(file.path(boost_parent, "boost")))
      stop("Boost headers not found: apt-get install -y libboost-dev")
    rstan_options(boost_lib = boost_parent)
  }
  rstan_options(auto_write = FALSE)
}

# Compile stan_dir/stan_file, build the data with load_data() (a function
# returning list(stan = <Stan data>, ...)), and sample with the settings in
# opt (chains, warmup, iter = kept draws per chain, seed, cores, adapt_delta).
# Returns list(prog = program text, dat, fit, t_compile, t_sample).
compile_and_sample <- function(name, stan_dir, stan_file, load_data, opt) {
  cat(sprintf("== %s: compiling %s\n", name, stan_file))
  stan_path <- file.path(stan_dir, stan_file)
  prog <- paste(readLines(stan_path), collapse = "\n")
  t0 <- proc.time()[["elapsed"]]
  mod <- stan_model(model_code = prog, model_name = name)
  t_compile <- proc.time()[["elapsed"]] - t0
  dat <- load_data()
  cat(sprintf("== %s: sampling %d chains x (%d warmup + %d kept), seed %d\n",
              name, opt$chains, opt$warmup, opt$iter, opt$seed))
  t0 <- proc.time()[["elapsed"]]
  fit <- sampling(mod, data = dat$stan, chains = opt$chains,
                  warmup = opt$warmup, iter = opt$warmup + opt$iter,
                  thin = 1, seed = opt$seed, cores = opt$cores,
                  control = list(adapt_delta = opt$adapt_delta),
                  refresh = 0)
  t_sample <- proc.time()[["elapsed"]] - t0
  list(prog = prog, dat = dat, fit = fit, t_compile = t_compile,
       t_sample = t_sample)
}

# Posterior summaries (posterior package) of the parameters in pars, a named
# character vector: report name -> Stan name (e.g. c(tau1 = "tau[1]")).
# Returns list(summ = summarise_draws() table, params = per-parameter lists
# keyed by report name, in the order of pars).
summarise_posterior <- function(fit, pars) {
  stan_names <- unname(pars)
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

  params <- list()
  for (i in seq_along(pars)) {
    rn <- names(pars)[i]
    row <- summ[summ$variable == pars[[i]], ]
    params[[rn]] <- list(
      stan_name = pars[[i]],
      mean = row$mean, median = row$median, sd = row$sd,
      q2.5 = row$q2.5, q97.5 = row$q97.5,
      mcse_median = row$mcse_median, mcse_mean = row$mcse_mean,
      ess_bulk = row$ess_bulk, ess_tail = row$ess_tail, rhat = row$rhat)
  }
  list(summ = summ, params = params)
}

# NUTS diagnostics over the kept draws, per chain: divergences, max-treedepth
# hits, E-BFMI, adapted step size; plus the max_treedepth setting used.
sampler_diagnostics <- function(fit) {
  sp <- get_sampler_params(fit, inc_warmup = FALSE)
  div <- vapply(sp, function(s) sum(s[, "divergent__"]), numeric(1))
  maxtd <- fit@stan_args[[1]]$control$max_treedepth
  if (is.null(maxtd)) maxtd <- 10
  td_hits <- vapply(sp, function(s) sum(s[, "treedepth__"] >= maxtd), numeric(1))
  ebfmi <- vapply(sp, function(s) {
    e <- s[, "energy__"]; sum(diff(e)^2) / sum((e - mean(e))^2)
  }, numeric(1))
  stepsize <- vapply(sp, function(s) s[1, "stepsize__"], numeric(1))
  list(div = div, maxtd = maxtd, td_hits = td_hits, ebfmi = ebfmi,
       stepsize = stepsize)
}

# The JSON fields both scripts write between `data` and `seconds`, in output
# order: versions, sampler settings, summary notes, diagnostics.
run_fields <- function(opt, diag, summ) {
  list(
    r_version = R.version.string,
    rstan_version = as.character(packageVersion("rstan")),
    stanheaders_version = as.character(packageVersion("StanHeaders")),
    posterior_version = as.character(packageVersion("posterior")),
    seed = opt$seed,
    chains = opt$chains, warmup = opt$warmup, iter_kept_per_chain = opt$iter,
    thin = 1L, draws_kept_total = opt$chains * opt$iter,
    init = "rstan default (uniform(-2, 2) on the unconstrained scale)",
    control = list(adapt_delta = opt$adapt_delta, max_treedepth = diag$maxtd),
    summaries = paste(
      "median, q2.5, q97.5: R median()/quantile(type = 7) over all kept draws;",
      "posterior package:",
      "mcse_median and mcse_mean (Vehtari et al. 2021), ess_bulk, ess_tail,",
      "rhat = max(rank-normalised split bulk/tail R-hat)"),
    divergent_transitions = sum(diag$div),
    divergent_by_chain = as.list(diag$div),
    max_treedepth_hits = sum(diag$td_hits),
    ebfmi_by_chain = as.list(diag$ebfmi),
    stepsize_by_chain = as.list(diag$stepsize),
    max_rhat = max(summ$rhat),
    min_ess_bulk = min(summ$ess_bulk),
    min_ess_tail = min(summ$ess_tail)
  )
}

# Write res to out_dir/stan_<name>.json and print the one-line summary.
# Returns the file path.
write_peer_json <- function(res, out_dir, name, diag, summ, t_sample) {
  out_file <- file.path(out_dir, sprintf("stan_%s.json", name))
  write_json(res, out_file, digits = NA, auto_unbox = TRUE, pretty = TRUE)
  cat(sprintf("== %s: divergences %d, max treedepth hits %d, max Rhat %.4f, min bulk ESS %.0f (%.0f s sampling)\n",
              name, sum(diag$div), sum(diag$td_hits), max(summ$rhat),
              min(summ$ess_bulk), t_sample))
  out_file
}
